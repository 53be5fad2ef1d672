package intranet

import (
	"net"
	"sync"
	"time"
)

// Refuser tells refused connections why (server full, shutting down) off
// the accept goroutine, so an accept loop never waits on a peer: over TLS
// the first write runs the handshake, and a silent peer would hold it. Each
// refusal has one deadline covering the handshake and the write. At most
// max refusals are in flight; beyond that a refused connection is closed
// without a word (a flood is not owed explanations).
type Refuser struct {
	timeout time.Duration
	slots   chan struct{}
	wg      sync.WaitGroup
}

// NewRefuser returns a Refuser whose refusals take at most timeout each,
// max of them at a time.
func NewRefuser(timeout time.Duration, max int) *Refuser {
	return &Refuser{timeout: timeout, slots: make(chan struct{}, max)}
}

// Refuse writes frame to c and closes it, in the background. It never
// blocks. before, if set, runs first on the background goroutine.
func (r *Refuser) Refuse(c net.Conn, frame []byte, before func()) {
	select {
	case r.slots <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() { <-r.slots }()
		if before != nil {
			before()
		}
		_ = c.SetDeadline(time.Now().Add(r.timeout))
		_, _ = c.Write(frame)
		_ = c.Close()
	}()
}

// Wait returns when every refusal started has ended (each within its
// timeout).
func (r *Refuser) Wait() { r.wg.Wait() }
