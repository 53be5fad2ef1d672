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
	mu          sync.Mutex // guards the funcs
	crash       func()
	afterLookup func(account string, online bool)
	resubscribe func()
}

// SetAfterLookup makes the node call f on its lookup worker after a
// holder lookup's Redis answer and before it applies it (nil: none). A
// test blocks in f to order events against the answer.
func (h *Node) SetAfterLookup(f func(account string, online bool)) {
	h.mu.Lock()
	h.afterLookup = f
	h.mu.Unlock()
}

// AfterLookup is called by the node (a nil hook does nothing).
func (h *Node) AfterLookup(account string, online bool) {
	if h == nil {
		return
	}
	h.mu.Lock()
	f := h.afterLookup
	h.mu.Unlock()
	if f != nil {
		f(account, online)
	}
}

// SetBeforeResubscribe makes the node call f before it subscribes to the
// logins channel again after losing the subscription (nil: none).
func (h *Node) SetBeforeResubscribe(f func()) {
	h.mu.Lock()
	h.resubscribe = f
	h.mu.Unlock()
}

// BeforeResubscribe is called by the node (a nil hook does nothing).
func (h *Node) BeforeResubscribe() {
	if h == nil {
		return
	}
	h.mu.Lock()
	f := h.resubscribe
	h.mu.Unlock()
	if f != nil {
		f()
	}
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
