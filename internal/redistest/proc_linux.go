package redistest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr makes the kernel kill redis-server when the test binary
// dies (for example on a test timeout), so no server is left behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitStopped waits until /proc reports pid as stopped (state T).
func waitStopped(pid int, deadline time.Time) error {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("redistest: read %s: %w", path, err)
		}
		// Format: "pid (comm) state ..."; comm may contain spaces.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 && s[i+2] == 'T' {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("redistest: process %d did not stop in time", pid)
		}
		<-tick.C
	}
}
