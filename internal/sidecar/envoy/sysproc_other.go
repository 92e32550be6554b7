//go:build !linux

package envoy

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts Envoy in its own process group, so a terminal's Ctrl-C
// reaches the sidecar only, which drains first.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// kill ends Envoy.
func kill(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
