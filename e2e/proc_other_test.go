//go:build e2e && !linux

package e2e

import "syscall"

// sysProcAttr: nothing portable kills a child with its parent.
func sysProcAttr() *syscall.SysProcAttr { return nil }
