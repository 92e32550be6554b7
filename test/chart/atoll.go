package chart

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// Binary is a command of this module built once for a test package: a
// package keeps one in a variable, calls Path from its tests and Remove
// from TestMain.
type Binary struct {
	// Package is the command's import path; empty is cmd/atoll.
	Package string

	once sync.Once
	dir  string
	err  error
}

// Path builds the command the first time it is asked, and returns it.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	pkg := b.Package
	if pkg == "" {
		pkg = "github.com/atoll-mesh/atoll/cmd/atoll"
	}
	name := path.Base(pkg)
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", name+"-bin-"); b.err != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(b.dir, name), pkg).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("%w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", pkg, b.err)
	}
	return filepath.Join(b.dir, name)
}

// Remove deletes the built binary, if any.
func (b *Binary) Remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
