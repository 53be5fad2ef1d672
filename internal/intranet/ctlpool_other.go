//go:build !linux

package intranet

import (
	"net"
	"syscall"
)

// rawConn: pools write only on Linux; elsewhere every queue keeps its
// WriteLoop goroutine.
func rawConn(net.Conn) (syscall.RawConn, bool) { return nil, false }

// iovec stands for a writev buffer, unused here.
type iovec struct{}

func writevNow(syscall.RawConn, [][]byte, []iovec) (int, []iovec, error) {
	return 0, nil, errNotPoolable
}
