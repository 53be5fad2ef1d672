//go:build !linux

package gateway

import (
	"errors"
	"net"
	"time"
)

// poller is Linux-only: elsewhere every idle connection parks a goroutine.
type poller struct{}

func newPoller(time.Duration) (*poller, error) {
	return nil, errors.New("gateway: no epoll on this platform")
}

func (p *poller) close()                           {}
func (p *poller) park(*client) bool                { return false }
func (p *poller) forget(*client)                   {}
func readNow(c net.Conn, b []byte) (int, error)    { return c.Read(b) }
func rawReadNow(c net.Conn, b []byte) (int, error) { return c.Read(b) }
