//go:build !linux

package clusterdns

import "syscall"

// sysProcAttr is empty where the kernel cannot kill a child with its
// parent; the test's cleanup still stops CoreDNS.
func sysProcAttr() *syscall.SysProcAttr { return nil }
