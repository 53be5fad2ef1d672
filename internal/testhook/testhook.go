// Package testhook lets this module's tests reach into a running node
// without a public API: a test puts a hook into the context it passes to
// Start, and the node fills it in (as net/http/httptrace passes its hooks).
// Code outside this module cannot import the package, so the hooks are no
// part of the framework's API; a node started without one carries none.
package testhook

import (
	"context"
	"sync"
)

// Node is a node's test hook. The zero value is ready; it is safe for
// concurrent use.
type Node struct {
	mu    sync.Mutex // guards crash
	crash func()
}

// Crash stops the node the way a killed process stops: its connections
// drop and it sends no leave, so the other members see a failure. It
// returns once the node's goroutines are done, and does nothing when no
// node was started with this hook.
func (h *Node) Crash() {
	h.mu.Lock()
	f := h.crash
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

// SetCrash is how the node's Start fills in the hook.
func (h *Node) SetCrash(f func()) {
	h.mu.Lock()
	h.crash = f
	h.mu.Unlock()
}

type nodeKey struct{}

// WithNode returns a context carrying h for a node's Start.
func WithNode(ctx context.Context, h *Node) context.Context {
	return context.WithValue(ctx, nodeKey{}, h)
}

// NodeFrom returns the hook in ctx, nil when there is none.
func NodeFrom(ctx context.Context) *Node {
	h, _ := ctx.Value(nodeKey{}).(*Node)
	return h
}
