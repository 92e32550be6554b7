package chart

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// AtollBinary is cmd/atoll built once for a test package: a package keeps
// one in a variable, calls Path from its tests and Remove from TestMain.
type AtollBinary struct {
	once sync.Once
	dir  string
	err  error
}

// Path builds cmd/atoll the first time it is asked, and returns it.
func (b *AtollBinary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "atoll-bin-"); b.err != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(b.dir, "atoll"), "github.com/atoll-mesh/atoll/cmd/atoll").CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("building cmd/atoll: %v", b.err)
	}
	return filepath.Join(b.dir, "atoll")
}

// Remove deletes the built binary, if any.
func (b *AtollBinary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
