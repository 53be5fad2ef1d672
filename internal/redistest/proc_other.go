//go:build !linux

package redistest

import (
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// waitStopped cannot observe the process state portably; SIGSTOP is
// delivered promptly on Unix systems.
func waitStopped(int, time.Time) error { return nil }
