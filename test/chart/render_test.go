package chart

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/test/helmbin"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// modes are the values files of the two modes, in testdata.
var modes = []string{"global", "zone"}

func helmPath(t *testing.T) string {
	t.Helper()
	p, err := helmbin.Path()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func valuesFile(mode string) string { return filepath.Join("testdata", mode+".yaml") }

// render renders mode's values file with further helm flags.
func render(t *testing.T, mode string, flags ...string) []byte {
	t.Helper()
	out, err := Template(helmPath(t), []string{valuesFile(mode)}, flags...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLint lints the chart with each mode's values, warnings counted as
// failures.
func TestLint(t *testing.T) {
	helm := helmPath(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			out, err := Helm(helm, "lint", "--strict", Dir, "--namespace", Namespace, "--values", valuesFile(mode))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), "0 chart(s) failed") {
				t.Fatalf("helm lint did not pass:\n%s", out)
			}
		})
	}
}

// TestGolden compares each mode's rendering with testdata/<mode>.golden.yaml
// (go test -run TestGolden -update rewrites them), and renders twice to
// check the output does not change between runs.
func TestGolden(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			got := render(t, mode)
			if again := render(t, mode); !bytes.Equal(got, again) {
				t.Fatal("two renderings of the same values differ: the chart is not deterministic")
			}
			golden := filepath.Join("testdata", mode+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./test/chart -run TestGolden -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("helm template with %s differs from %s (rerun with -update if the change is meant):\n%s",
					valuesFile(mode), golden, firstDifference(string(want), string(got)))
			}
		})
	}
}

// firstDifference shows the first line where want and got differ.
func firstDifference(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(no line differs)"
}
