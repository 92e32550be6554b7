package kubeenv

import "syscall"

// sysProcAttr has the kernel kill the apiserver if the test binary dies
// without running its cleanups (a panic in another goroutine, a timeout,
// SIGKILL), so no apiserver outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
