// Package images holds the Dockerfiles of atoll's container images; its
// tests check what can be checked without a Docker engine: the binary the
// images ship is static, the images run as non-root, and the Go toolchain
// they build with is the one go.mod names.
package images

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/atoll-mesh/atoll/zone/kubernetes/inject"
)

// The atoll image has no libc: the binary must be static, as its
// Dockerfile builds it (CGO_ENABLED=0).
func TestBinaryIsStatic(t *testing.T) {
	out := filepath.Join(t.TempDir(), "atoll")
	cmd := exec.Command("go", "build", "-o", out, "../") // -trimpath, as the image has it, does not change linking
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader (PT_INTERP): it would not start on the scratch base image")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
}

// dockerfile reads the instructions of a Dockerfile, one per line.
func dockerfile(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// The images build with the Go that go.mod names, and build static
// binaries.
func TestImagesBuildWithTheModulesGo(t *testing.T) {
	mod, err := os.ReadFile("../../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	want := "FROM golang:" + string(m[1]) + "-"
	for _, name := range []string{"atoll.Dockerfile", "init.Dockerfile", "sidecar.Dockerfile"} {
		lines := dockerfile(t, name)
		var from, static bool
		for _, l := range lines {
			from = from || strings.HasPrefix(l, want)
			static = static || strings.Contains(l, "CGO_ENABLED=0 go build")
		}
		if !from {
			t.Errorf("%s does not build with %s… (go.mod says go %s)", name, want, m[1])
		}
		if !static {
			t.Errorf("%s does not build with CGO_ENABLED=0", name)
		}
		if _, err := os.Stat(name + ".dockerignore"); err != nil {
			t.Errorf("%s has no .dockerignore, so the build context would carry .git and bin: %v", name, err)
		}
	}
}

// lastUser is the USER of a Dockerfile's last stage ("" for none).
func lastUser(t *testing.T, name string) string {
	user := ""
	for _, l := range dockerfile(t, name) {
		if strings.HasPrefix(l, "FROM ") {
			user = "" // a new stage
		}
		if u, ok := strings.CutPrefix(l, "USER "); ok {
			user = u
		}
	}
	return user
}

// The atoll image's last stage runs as a numeric non-root user, so
// Kubernetes' runAsNonRoot can check it.
func TestAtollImageRunsAsNonRoot(t *testing.T) {
	user := lastUser(t, "atoll.Dockerfile")
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || strings.Trim(uid, "0123456789") != "" {
		t.Errorf("the atoll image's last stage runs as %q, want a numeric non-root user", user)
	}
}

// The sidecar image runs as the proxy's UID and GID, the ones the
// transparent proxy lets through and the webhook sets.
func TestSidecarImageRunsAsTheProxyUser(t *testing.T) {
	want := fmt.Sprintf("%d:%d", inject.ProxyUID, inject.ProxyUID)
	if user := lastUser(t, "sidecar.Dockerfile"); user != want {
		t.Errorf("the sidecar image runs as %q, want %s", user, want)
	}
	var entry bool
	for _, l := range dockerfile(t, "sidecar.Dockerfile") {
		entry = entry || l == `ENTRYPOINT ["/usr/local/bin/atoll", "sidecar"]`
	}
	if !entry {
		t.Error("the sidecar image's entrypoint is not atoll sidecar")
	}
}
