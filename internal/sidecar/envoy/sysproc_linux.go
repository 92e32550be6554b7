package envoy

import (
	"os/exec"
	"syscall"
)

// sysProcAttr puts Envoy in its own process group (a terminal's Ctrl-C
// reaches the sidecar only, which drains first) and has the kernel kill
// Envoy if the sidecar dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// kill ends Envoy's process group: Envoy and anything it started.
func kill(cmd *exec.Cmd) {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		_ = cmd.Process.Kill()
	}
}
