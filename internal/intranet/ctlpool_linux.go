//go:build linux

package intranet

import (
	"net"
	"syscall"
	"unsafe"
)

// rawConn returns c's socket for non-blocking writes: plain TCP only.
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, false
	}
	raw, err := tc.SyscallConn()
	return raw, err == nil
}

// iovMax is the most buffers one writev takes (Linux's IOV_MAX).
const iovMax = 1024

// writevNow offers bufs to the kernel with non-blocking writev calls and
// returns how many bytes it took: all of them unless the socket buffer
// filled up. It never waits. iov is scratch space, returned for reuse.
// iovec is one buffer of a writev.
type iovec = syscall.Iovec

func writevNow(raw syscall.RawConn, bufs [][]byte, iov []iovec) (int, []iovec, error) {
	var n int
	var werr error
	err := raw.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			iov = iov[:0]
			want := 0
			for _, b := range bufs[:min(len(bufs), iovMax)] {
				if len(b) == 0 {
					continue
				}
				v := syscall.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				iov = append(iov, v)
				want += len(b)
			}
			taken := min(len(bufs), iovMax)
			if len(iov) == 0 {
				bufs = bufs[taken:]
				continue
			}
			r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
			switch e {
			case 0:
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return true // full: the caller finishes on a goroutine of its own
			default:
				werr = e
				return true
			}
			n += int(r)
			if int(r) < want {
				return true
			}
			bufs = bufs[taken:]
		}
		return true // never wait for the socket to drain
	})
	clear(iov) // no pointers kept into the frames
	if err != nil {
		return n, iov, err
	}
	return n, iov, werr
}
