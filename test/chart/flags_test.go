package chart

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// helpFlag matches a flag's line in `atoll <command> --help`: its name,
// and `[=true|false]` when it is a boolean that may stand alone.
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-z], )?--([a-z0-9-]+)(\[=true\|false\])?`)

// TestRenderedFlagsExist builds cmd/atoll and checks every flag the chart
// gives the global's StatefulSet and the zone's Deployment, in every
// variant, is one `atoll global --help` or `atoll zone --help` lists, and
// that a flag without a value is a boolean (a string flag would swallow
// the next argument).
func TestRenderedFlagsExist(t *testing.T) {
	bin := atoll.Path(t)
	known := map[string]map[string]bool{} // command → flag → boolean
	for _, cmd := range []string{"global", "zone"} {
		out, err := exec.Command(bin, cmd, "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("atoll %s --help: %v\n%s", cmd, err, out)
		}
		known[cmd] = map[string]bool{}
		for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
			known[cmd][m[1]] = m[2] != ""
		}
		if _, ok := known[cmd]["api-addr"]; !ok {
			t.Fatalf("atoll %s --help lists %d flags; the pattern no longer reads its output:\n%s", cmd, len(known[cmd]), out)
		}
	}

	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			objs := v.objects(t)
			kind, cmd := "StatefulSet", "global"
			if v.mode == "zone" {
				kind, cmd = "Deployment", "zone"
			}
			w := Find(objs, kind, Release)
			if w == nil {
				t.Fatalf("%s renders no %s %s", v.name, kind, Release)
			}
			containers, _, _ := unstructured.NestedSlice(w.Object, "spec", "template", "spec", "containers")
			if len(containers) != 1 {
				t.Fatalf("%s %s has %d containers, want 1", kind, Release, len(containers))
			}
			args, _, _ := unstructured.NestedStringSlice(containers[0].(map[string]any), "args")
			if len(args) < 2 || args[0] != cmd {
				t.Fatalf("%s %s runs %q, want the %s command and its flags", kind, Release, args, cmd)
			}
			for _, a := range args[1:] {
				name, _, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !strings.HasPrefix(a, "--") {
					t.Errorf("argument %q is not a --flag", a)
					continue
				}
				boolean, ok := known[cmd][name]
				switch {
				case !ok:
					t.Errorf("the chart gives atoll %s the flag --%s, which `atoll %s --help` does not list", cmd, name, cmd)
				case !hasValue && !boolean:
					t.Errorf("the chart gives atoll %s --%s without a value, but it is not a boolean flag", cmd, name)
				}
			}
		})
	}
}
