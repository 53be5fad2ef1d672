package gateway

import (
	"net"

	"github.com/xserver/xserver/common"
)

// Crash drops every connection at once, as a killed process would: no kick
// frames, no lose-account, no goodbye to the nodes. Test-only.
func (g *Gateway) Crash() {
	g.closeOne.Do(func() {
		close(g.stop)
		g.closeListeners()
		if g.wsSrv != nil {
			_ = g.wsSrv.Close()
		}
		if g.sub != nil {
			_ = g.sub.Close()
		}
		g.mu.Lock()
		g.closed = true
		var conns []net.Conn
		for c := range g.conns {
			conns = append(conns, c)
		}
		for _, l := range g.links {
			conns = append(conns, l.conn)
		}
		g.sessMap = map[string]*session{} // a dead process tells no node
		g.links = map[common.NodeID]*link{}
		g.mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
		if g.poll != nil {
			g.poll.wakeAll() // their sockets are gone: no event will come
		}
		g.connWG.Wait()
		if g.poll != nil {
			g.poll.close()
		}
		g.linkWG.Wait()
		g.wg.Wait()
		g.nodeHook.Crash()
		if g.admin != nil {
			_ = g.admin.Close()
		}
	})
}

// DropKickChannel unsubscribes from the logins channel, as a lost Pub/Sub
// connection would: announcements from other gateways no longer arrive.
func (g *Gateway) DropKickChannel() { _ = g.sub.Close() }

// SetBeforeRestore makes the gateway call f when it found that Redis lost
// its data, before it restores its live sessions' records (nil: none).
func (g *Gateway) SetBeforeRestore(f func()) {
	if f == nil {
		g.beforeRestore.Store(nil)
		return
	}
	g.beforeRestore.Store(&f)
}

// SetAfterTakeover makes every resume call f with its attempt once Redis
// answered its takeover (nil: none).
func (g *Gateway) SetAfterTakeover(f func(attempt uint32)) {
	if f == nil {
		g.afterTakeover.Store(nil)
		return
	}
	g.afterTakeover.Store(&f)
}

// IgnoreResumeStates makes the gateway drop the nodes' answers to resumes
// (ResumeState), as if the nodes did not answer.
func (g *Gateway) IgnoreResumeStates(on bool) { g.ignoreResumeStates.Store(on) }

// DropLinks closes every node link's connection, as a network blip would:
// the nodes dial again.
func (g *Gateway) DropLinks() {
	for _, l := range g.allLinks() {
		_ = l.conn.Close()
	}
}
