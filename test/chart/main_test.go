package chart

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// binDir holds cmd/atoll, built once for the package's tests.
var (
	binDir   string
	build    sync.Once
	buildErr error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildAtoll builds cmd/atoll the first time a test asks, and returns it.
func buildAtoll(t *testing.T) string {
	t.Helper()
	build.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "atoll-chart-test-")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "atoll"), "github.com/atoll-mesh/atoll/cmd/atoll").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("building cmd/atoll: %v", buildErr)
	}
	return filepath.Join(binDir, "atoll")
}
