package helmbin

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The version the tests expect is the one make helm builds.
func TestVersionIsThePinnedOne(t *testing.T) {
	mod, err := os.ReadFile("../helm/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?helm\.sh/helm/v4 (v\S+)`).FindSubmatch(mod)
	if m == nil || string(m[1]) != Version {
		t.Fatalf("test/helm/go.mod pins helm %q, helmbin.Version is %s: make them equal", m, Version)
	}
	bin, err := Path()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version", "--short").CombinedOutput()
	if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), Version) {
		t.Errorf("%s version = %q (%v), want %s: run make helm", bin, out, err, Version)
	}
}
