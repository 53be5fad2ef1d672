package mgrserver_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/mgrserver"
	pb "github.com/xserver/xserver/proto"
)

// Each kind of bad input closes only the offending connection, with a
// logged reason, an error code and a counter; the server and every other
// member carry on.
func TestBadInputClosesOnlyThatConnection(t *testing.T) {
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.HandshakeTimeout = 300 * time.Millisecond
	cfg.MaxFrame = 64 << 10
	m := c.startMgr(cfg)
	nodes := c.startNodes(5)
	c.leader([]*mgrserver.Server{m}, 10*time.Second)
	waitFor(t, 10*time.Second, "converged", func() bool { return converged(m, nodes) })

	huge := make([]byte, 6)
	binary.BigEndian.PutUint32(huge, 1<<30)
	binary.BigEndian.PutUint16(huge[4:], uint16(wire.KindRegister))

	cases := []struct {
		name   string
		send   func(p *rawPeer)
		code   uint32
		metric string
	}{
		{"wrong secret", func(p *rawPeer) { p.write(p.registerFrame("not-the-secret")) }, intranet.CodeAuth, "auth"},
		{"malformed register", func(p *rawPeer) { p.write(frameOf(wire.KindRegister, []byte{0xff, 0xff, 0xff})) }, intranet.CodeMalformed, "malformed"},
		{"length under header", func(p *rawPeer) { p.write([]byte{0, 0, 0, 1, 0}) }, intranet.CodeMalformed, "malformed"},
		{"oversized frame", func(p *rawPeer) { p.write(huge) }, intranet.CodeTooLarge, "too_large"},
		{"frame before registration", func(p *rawPeer) { p.write(frameOf(wire.KindPing, nil)) }, intranet.CodeUnexpected, "unexpected"},
		{"no registration in time", func(p *rawPeer) {}, intranet.CodeHandshake, "handshake"},
		{"bad node info", func(p *rawPeer) {
			f, _ := wire.Frame(wire.KindRegister, &pb.Register{Mac: intranet.MAC(testSecret, p.hello.Nonce, []byte{1}), Info: &pb.NodeInfo{Id: []byte{1}}})
			p.write(f)
		}, intranet.CodeBadInfo, "bad_info"},
		{"unknown frame after registration", func(p *rawPeer) { p.register(); p.write(frameOf(wire.Kind(999), []byte("x"))) }, intranet.CodeUnexpected, "unexpected"},
		{"garbage after registration", func(p *rawPeer) { p.register(); p.write(frameOf(wire.KindUpdateSelf, []byte{0x0a, 0xff})) }, intranet.CodeMalformed, "malformed"},
	}
	// Every good node's connection must survive: a leader that dropped them
	// all would see them register again and converge, which the checks on
	// views alone cannot tell from nothing having happened.
	regsBefore := counter(t, m, "xserver_mgr_registrations_total", "")
	failedBefore := counter(t, m, "xserver_mgr_leaves_total", "failed")
	registered := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, m, "xserver_mgr_rejected_total", tc.metric)
			p := dialRaw(t, m.Addr())
			tc.send(p)
			if code := p.expectClosed(); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
			if after := counter(t, m, "xserver_mgr_rejected_total", tc.metric); after != before+1 {
				t.Fatalf("%s counter %v -> %v", tc.metric, before, after)
			}
		})
		if tc.name == "unknown frame after registration" || tc.name == "garbage after registration" {
			registered++
		}
	}
	// The well-behaved members never noticed, beyond the two peers that had
	// registered before misbehaving (each a failure leave on every node).
	waitFor(t, 10*time.Second, "members intact", func() bool { return converged(m, nodes) })
	if got := counter(t, m, "xserver_mgr_registrations_total", "") - regsBefore; got != float64(registered) {
		t.Fatalf("%v registrations during the bad input, want %d (the misbehaving peers only): good nodes were dropped and came back", got, registered)
	}
	if got := counter(t, m, "xserver_mgr_leaves_total", "failed") - failedBefore; got != float64(registered) {
		t.Fatalf("%v failed leaves during the bad input, want %d (the misbehaving peers only)", got, registered)
	}
	want := int64(registered * len(nodes))
	waitFor(t, 10*time.Second, "leave callbacks for the two kicked peers", func() bool { return c.leaves.Load() >= want })
	if got := c.leaves.Load(); got != want {
		t.Fatalf("leave callbacks %d, want %d", got, want)
	}
	waitFor(t, 10*time.Second, "only the good nodes' connections open", func() bool {
		return counter(t, m, "xserver_mgr_connections", "") == float64(len(nodes))
	})
	// And a newcomer still gets in.
	n := c.startNode(c.nodeConfig(99))
	nodes = append(nodes, n)
	waitFor(t, 10*time.Second, "newcomer registered", func() bool { return converged(m, nodes) })
}

// counter reads metric name of m: the series labelled reason, or the
// unlabelled one when reason is "".
func counter(t *testing.T, m *mgrserver.Server, name, reason string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if reason == "" {
				if mt.GetGauge() != nil {
					return mt.GetGauge().GetValue()
				}
				return mt.GetCounter().GetValue()
			}
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return mt.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
