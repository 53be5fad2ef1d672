//go:build e2e && linux

package e2e

import "syscall"

// sysProcAttr makes the kernel kill a child when the test binary dies
// (a test timeout), so no lobby is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
