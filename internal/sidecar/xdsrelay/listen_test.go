package xdsrelay

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnix(t *testing.T) {
	t.Run("mode 0600", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "xds.sock")
		lis, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Fatalf("the socket's mode is %v, want a socket with 0600", fi.Mode())
		}
	})
	t.Run("stale socket removed", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "xds.sock")
		old, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		old.(*net.UnixListener).SetUnlinkOnClose(false) // as a process killed leaves it
		old.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("the stale socket should exist: %v", err)
		}
		lis, err := ListenUnix(path)
		if err != nil {
			t.Fatalf("over a stale socket: %v", err)
		}
		defer lis.Close()
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("the new socket does not accept: %v", err)
		}
		c.Close()
	})
	t.Run("served socket kept", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "xds.sock")
		live, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		_, err = ListenUnix(path)
		if err == nil || !strings.Contains(err.Error(), "another process serves it") || !strings.Contains(err.Error(), path) {
			t.Fatalf("over a served socket: %v, want an error naming it as served", err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("the served socket was broken: %v", err)
		}
		c.Close()
	})
	t.Run("not a socket", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "xds.sock")
		if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ListenUnix(path)
		if err == nil || !strings.Contains(err.Error(), "is not a socket") {
			t.Fatalf("over a regular file: %v, want an error saying it is not a socket", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep" {
			t.Fatal("the regular file was changed")
		}
	})
	t.Run("no directory", func(t *testing.T) {
		path := filepath.Join(shortDir(t), "missing", "xds.sock")
		_, err := ListenUnix(path)
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "directory must exist") {
			t.Fatalf("in a missing directory: %v, want an error naming the path and the directory", err)
		}
	})
	t.Run("empty path", func(t *testing.T) {
		if _, err := ListenUnix(""); err == nil || !strings.Contains(err.Error(), "socket path is empty") {
			t.Fatalf("empty path: %v", err)
		}
	})
}
