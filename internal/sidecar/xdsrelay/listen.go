package xdsrelay

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// ListenUnix listens on a Unix socket at path for Envoy, readable and
// writable by the sidecar's user only (mode 0600). A socket left at path
// by an earlier run that nobody serves any more is removed first; a path
// that another process serves, or that is not a socket, is an error.
func ListenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("xds relay socket path is empty: give a path in the sidecar's run directory, e.g. /var/run/atoll/xds.sock")
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("xds relay socket %s: %w: the directory must exist and be writable by the sidecar's user", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("xds relay socket %s: restricting it to its owner: %w", path, err)
	}
	return lis, nil
}

// removeStale removes a socket at path that no process listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("xds relay socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("xds relay socket %s: the path exists and is not a socket (%s): remove it or choose another path", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("xds relay socket %s: another process serves it: stop that process (a second sidecar?) or choose another path", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("xds relay socket %s: checking whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("xds relay socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}
