package clusterdns

import "syscall"

// sysProcAttr has the kernel kill CoreDNS if the test binary dies without
// running its cleanups, so no CoreDNS outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
