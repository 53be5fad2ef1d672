//go:build unix

package intranet

import (
	"errors"
	"syscall"
)

// WriteNow offers b to the kernel in one non-blocking write and returns
// how much it took. Whatever went wrong (a full socket buffer, an expired
// write deadline, a closed connection) is left to the writer goroutine,
// which reports it.
func WriteNow(raw syscall.RawConn, b []byte) int {
	var n int
	err := raw.Write(func(fd uintptr) bool {
		for {
			m, err := syscall.Write(int(fd), b)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			n = max(m, 0)
			return true // never wait for the socket to drain
		}
	})
	if err != nil {
		return 0
	}
	return n
}
