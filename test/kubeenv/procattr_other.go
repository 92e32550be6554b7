//go:build !linux

package kubeenv

import "syscall"

// sysProcAttr is empty where the kernel cannot kill a child with its
// parent; the test's cleanup still stops the apiserver.
func sysProcAttr() *syscall.SysProcAttr { return nil }
