//go:build !linux

package intranet

import (
	"net"
	"syscall"
)

// rawConn: pools write only on Linux; elsewhere every queue keeps its
// WriteLoop goroutine.
func rawConn(net.Conn) (syscall.RawConn, bool) { return nil, false }

func writevNow(syscall.RawConn, [][]byte, []syscall.Iovec) (int, []syscall.Iovec, error) {
	return 0, nil, errNotPoolable
}
