package corednsbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The version and plugins the tests expect are the ones make coredns
// builds, and the binary Path finds reports them.
func TestPinnedVersionAndPlugins(t *testing.T) {
	mod, err := os.ReadFile("../coredns/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?github\.com/coredns/coredns (v\S+)`).FindSubmatch(mod)
	if m == nil || string(m[1]) != Version {
		t.Fatalf("test/coredns/go.mod pins CoreDNS %q, corednsbin.Version is %s: make them equal", m, Version)
	}
	main, err := os.ReadFile("../coredns/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var imported []string
	for _, m := range regexp.MustCompile(`"github\.com/coredns/coredns/plugin/(\w+)"`).FindAllSubmatch(main, -1) {
		imported = append(imported, string(m[1]))
	}
	slices.Sort(imported)
	if !slices.Equal(imported, Plugins) {
		t.Fatalf("test/coredns/main.go imports the plugins %v, corednsbin.Plugins is %v: make them equal (sorted)", imported, Plugins)
	}

	bin, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-version").CombinedOutput()
	if want := "CoreDNS-" + strings.TrimPrefix(Version, "v"); err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), want) {
		t.Errorf("%s -version = %q (%v), want %s: run make coredns", bin, out, err, want)
	}
}

// A binary without the plugins the tests configure is refused, naming
// them and how to rebuild.
func TestPathRefusesABinaryWithoutThePlugins(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "coredns")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nprintf 'bind\\nerrors\\nfile\\n'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinaryEnv, fake)
	_, err := Path()
	if err == nil {
		t.Fatal("Path accepted a CoreDNS with only bind, errors and file")
	}
	for _, want := range []string{"kubernetes", "forward", BinaryEnv, "make coredns"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	t.Setenv(BinaryEnv, filepath.Join(t.TempDir(), "absent"))
	if _, err := Path(); err == nil || !strings.Contains(err.Error(), "make coredns") {
		t.Errorf("Path with a missing binary: %v, want an error saying to run make coredns", err)
	}
}
