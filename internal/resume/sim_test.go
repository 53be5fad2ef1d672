package resume

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// sim wires one node core, gateways (Session plus a minimal shell) and a
// client core with in-memory FIFO queues, to check the guarantees end to
// end: every message in both directions arrives exactly once, in order,
// whatever point a connection is cut or a gateway dies at.
type sim struct {
	t    *testing.T
	now  time.Time
	node *NodeCore
	nid  common.NodeID

	gws  map[common.NodeID]*simGW
	cur  common.NodeID // gateway holding the session
	cl   *Client
	sid  uint64
	conn bool // client connected to cur

	toNode   []simFrame // gateway → node, in order, tagged with the gateway
	toClient [][]byte   // gateway → client
	toGW     [][]byte   // client → gateway
	nodeOut  []simFrame // node → gateway

	nodeGot   []uint64 // client messages processed by the node (cmd)
	clientGot []uint64 // node messages received by the client (cmd)
	processed uint64   // Deliver frames processed by the node on the current link
}

type simFrame struct {
	gw common.NodeID
	b  []byte
}

type simGW struct {
	id     common.NodeID
	sess   *Session
	fifo   []uint32 // client seqs forwarded to the node, in link order
	acked  uint64   // link frames acknowledged
	sent   uint64
	wait   bool     // waiting for the node's ResumeState
	parked [][]byte // client frames read while waiting
}

const simAcct = "acct"

func newSim(t *testing.T) *sim {
	s := &sim{t: t, now: t0, nid: common.NodeID{0xaa}, gws: map[common.NodeID]*simGW{}, sid: 42}
	s.node = newCore(NodeConfig{})
	for _, id := range []common.NodeID{gw1, gw2} {
		s.gws[id] = &simGW{id: id}
		s.node.LinkUp(s.now, id)
	}
	g := s.gws[gw1]
	g.sess = NewSession(s.sid, true)
	s.cur = gw1
	s.cl = NewClient(ClientConfig{AckEvery: 2, AckDelay: time.Millisecond}, simAcct, wire.Session{ID: s.sid})
	s.conn = true
	s.nodeDo(s.node.SessionOnline(s.now, gw1, simAcct, s.sid, time.Minute))
	return s
}

func (s *sim) nodeDo(out *Output) {
	for _, f := range out.Frames {
		s.nodeOut = append(s.nodeOut, simFrame{f.GW, append([]byte(nil), f.Bytes...)})
	}
	for _, a := range out.Lookups {
		s.nodeDo(s.node.Holder(s.now, a, s.cur, s.sid))
	}
}

func frames(b []byte, f func(k wire.Kind, p []byte)) {
	r := wire.NewReader(bytes.NewReader(b), 1<<20, 0)
	for {
		k, p, err := r.ReadFrame()
		if err != nil {
			return
		}
		f(k, p)
	}
}

// step moves one frame along one queue, choosing the queue by i so that
// every interleaving pattern the test drives is deterministic.
func (s *sim) step(i int) bool {
	for k := 0; k < 4; k++ {
		switch (i + k) % 4 {
		case 0:
			if len(s.nodeOut) > 0 {
				f := s.nodeOut[0]
				s.nodeOut = s.nodeOut[1:]
				s.gwFromNode(f)
				return true
			}
		case 1:
			if len(s.toNode) > 0 {
				f := s.toNode[0]
				s.toNode = s.toNode[1:]
				s.nodeFromGW(f)
				return true
			}
		case 2:
			if len(s.toClient) > 0 {
				b := s.toClient[0]
				s.toClient = s.toClient[1:]
				s.clientFrom(b)
				return true
			}
		case 3:
			if len(s.toGW) > 0 {
				b := s.toGW[0]
				s.toGW = s.toGW[1:]
				s.gwFromClient(b)
				return true
			}
		}
	}
	return false
}

func (s *sim) gwFromNode(f simFrame) {
	g := s.gws[f.gw]
	frames(f.b, func(k wire.Kind, p []byte) {
		switch k {
		case wire.KindPush:
			pf, err := wire.DecodePushFrame(p)
			if err != nil {
				s.t.Fatal(err)
			}
			if g.sess == nil || g.sess.Sid != pf.Sid {
				s.toNode = append(s.toNode, simFrame{g.id, wire.AppendRef(nil, wire.KindNotHere, simAcct, pf.Sid)})
				return
			}
			attached := s.conn && s.cur == g.id
			v, st := g.sess.OnPush(s.nid, pf.Epoch, pf.Seq, true, attached)
			switch v {
			case PushDeliver, PushAnnounce:
				if v == PushAnnounce {
					s.toClient = append(s.toClient, wire.AppendStreamOpen(nil, st.ID, st.Node, st.Epoch))
				}
				s.toClient = append(s.toClient, wire.AppendPush(nil, st.ID, pf.Seq, pf.Cmd, pf.Data))
			case PushGap:
				s.toNode = append(s.toNode, simFrame{g.id, wire.AppendStreamSeq(nil, wire.KindResend, simAcct, pf.Sid, pf.Epoch, st.Expected)})
			}
		case wire.KindLinkAck:
			n := binary.BigEndian.Uint64(p)
			for g.acked < n && len(g.fifo) > 0 {
				g.sess.Done(g.fifo[0])
				g.fifo = g.fifo[1:]
				g.acked++
			}
			if f, ok := g.sess.AckDue(1, true); ok && s.conn && s.cur == g.id {
				s.toClient = append(s.toClient, wire.AppendMsgAck(nil, f))
			}
		case wire.KindResumeState:
			st, err := wire.DecodeResumeState(p)
			if err != nil {
				s.t.Fatal(err)
			}
			var pr Processed
			pr.Add(st.Hi, st.Bitmap)
			g.sess.SetProcessed(&pr)
			g.wait = false
			s.toClient = append(s.toClient, wire.AppendResumed(nil, &wire.Resumed{MsgAck: g.sess.Floor()}))
			parked := g.parked
			g.parked = nil
			for _, b := range parked {
				s.gwFromClient(b)
			}
		}
	})
}

func (s *sim) nodeFromGW(f simFrame) {
	frames(f.b, func(k wire.Kind, p []byte) {
		switch k {
		case wire.KindDeliver:
			d, err := wire.DecodeDeliver(p)
			if err != nil {
				s.t.Fatal(err)
			}
			out, ok := s.node.Deliver(s.now, f.gw, simAcct, d.Sid, d.Csq)
			s.nodeDo(out)
			if ok {
				s.nodeGot = append(s.nodeGot, d.Cmd)
				// The node answers every message with a push (a reply).
				s.nodeSend(1000 + d.Cmd)
			}
			s.processed++
			s.nodeOut = append(s.nodeOut, simFrame{f.gw, wire.AppendLinkAck(nil, s.processed)})
		case wire.KindDelivered:
			r, e, seq, _ := wire.DecodeStreamSeq(p)
			s.nodeDo(s.node.Delivered(s.now, f.gw, simAcct, r.Sid, e, seq))
		case wire.KindResend:
			r, e, seq, _ := wire.DecodeStreamSeq(p)
			s.nodeDo(s.node.Resend(s.now, f.gw, simAcct, r.Sid, e, seq))
		case wire.KindNotHere:
			r, _ := wire.DecodeRef(p)
			s.nodeDo(s.node.NotHere(s.now, f.gw, simAcct, r.Sid))
		case wire.KindResume:
			r, req, _ := wire.DecodeResumeReq(nil, p)
			s.nodeDo(s.node.Resume(s.now, f.gw, simAcct, r.Sid, req))
		}
	})
}

func (s *sim) nodeSend(cmd uint64) {
	out, err := s.node.Send(s.now, simAcct, cmd, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	s.nodeDo(out)
}

func (s *sim) clientFrom(b []byte) {
	if !s.conn {
		return
	}
	frames(b, func(k wire.Kind, p []byte) {
		switch k {
		case wire.KindClientStream:
			st, _ := wire.DecodeStreamOpen(p)
			s.cl.OnStream(st)
		case wire.KindClientPush:
			pu, _ := wire.DecodePush(p)
			ok, err := s.cl.OnPush(s.now, pu.Stream, pu.Seq)
			if err != nil {
				s.t.Fatal(err)
			}
			if ok {
				s.clientGot = append(s.clientGot, pu.Cmd)
			}
			if a := s.cl.AckDue(s.now); a != nil {
				s.toGW = append(s.toGW, a)
			}
		case wire.KindClientMsgAck:
			seq, _ := wire.DecodeMsgAck(p)
			s.cl.OnMsgAck(seq)
		case wire.KindClientResumed:
			r, _ := wire.DecodeResumed(p)
			s.cl.OnResumed(r)
		}
	})
}

func (s *sim) gwFromClient(b []byte) {
	g := s.gws[s.cur]
	if !s.conn {
		return
	}
	if g.wait {
		g.parked = append(g.parked, b)
		return
	}
	frames(b, func(k wire.Kind, p []byte) {
		switch k {
		case wire.KindClientMsg:
			seq, cmd, data, _ := wire.DecodeMsg(p)
			switch g.sess.OnMsg(seq) {
			case MsgForward:
				g.fifo = append(g.fifo, seq)
				g.sent++
				s.toNode = append(s.toNode, simFrame{g.id, wire.AppendDeliver(nil, simAcct, s.sid, seq, cmd, data)})
			case MsgBad:
				s.t.Fatalf("client message %d out of sequence", seq)
			}
		case wire.KindClientAck:
			acks, _ := wire.DecodeAck(nil, p)
			for _, a := range acks {
				if st := g.sess.OnClientAck(a.Stream, a.Seq); st != nil {
					s.toNode = append(s.toNode, simFrame{g.id, wire.AppendStreamSeq(nil, wire.KindDelivered, simAcct, s.sid, st.Epoch, st.Acked)})
				}
			}
		}
	})
}

// cut drops the client connection; when die, the holding gateway dies too
// (its queues vanish) and the client resumes on the other gateway.
func (s *sim) cut(die bool) {
	s.conn = false
	s.toClient, s.toGW = nil, nil
	resume := s.cl.ResumeFrames()
	rd := wire.NewReader(bytes.NewReader(resume), 1<<20, 0)
	_, p, _ := rd.ReadFrame()
	r, err := wire.DecodeResume(p)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { // the resent messages follow the resume
		for {
			_, m, err := rd.ReadFrame()
			if err != nil {
				return
			}
			s.toGW = append(s.toGW, wire.AppendFrame(nil, wire.KindClientMsg, m))
		}
	}()
	old := s.gws[s.cur]
	if !die {
		req, acked := old.sess.ResumeHere(r.Streams, r.MsgAck, nil)
		s.conn = true
		for _, st := range acked {
			s.toNode = append(s.toNode, simFrame{old.id, wire.AppendStreamSeq(nil, wire.KindDelivered, simAcct, s.sid, st.Epoch, st.Acked)})
		}
		s.toNode = append(s.toNode, simFrame{old.id, wire.AppendResumeReq(nil, simAcct, s.sid, req[s.nid])})
		s.toClient = append(s.toClient, wire.AppendResumed(nil, &wire.Resumed{MsgAck: old.sess.Floor()}))
		return
	}
	// The gateway dies: everything it queued to the node is lost, and so
	// is what the node sent it.
	var keep []simFrame
	for _, f := range s.toNode {
		if f.gw != old.id {
			keep = append(keep, f)
		}
	}
	s.toNode = keep
	keep = nil
	for _, f := range s.nodeOut {
		if f.gw != old.id {
			keep = append(keep, f)
		}
	}
	s.nodeOut = keep
	s.nodeDo(s.node.LinkDown(s.now, old.id))
	s.processed = 0
	old.sess, old.fifo, old.acked, old.sent = nil, nil, 0, 0
	next := gw1
	if old.id == gw1 {
		next = gw2
	}
	g := s.gws[next]
	g.sess, _ = AdoptResume(s.sid, r.Streams, r.MsgAck, common.NodeID{})
	req := map[common.NodeID][]wire.EpochFrom{}
	for _, st := range g.sess.Streams() {
		req[st.Node] = append(req[st.Node], wire.EpochFrom{Epoch: st.Epoch, From: st.Expected})
	}
	g.wait = true
	g.fifo, g.acked, g.sent = nil, 0, 0
	s.cur, s.conn = next, true
	s.toNode = append(s.toNode, simFrame{next, wire.AppendResumeReq(nil, simAcct, s.sid, req[s.nid])})
	// Bring the old gateway back as a fresh process for later cuts.
	s.nodeDo(s.node.LinkUp(s.now, old.id))
}

func (s *sim) clientSend(cmd uint64) bool {
	f, err := s.cl.Send(cmd, nil)
	if err == ErrWindowFull {
		return false
	}
	if s.conn {
		s.toGW = append(s.toGW, f)
	}
	return true
}

func (s *sim) drain(limit int) {
	for i := 0; i < limit; i++ {
		if !s.step(i) {
			if a := s.cl.AckNow(); a != nil && s.conn {
				s.toGW = append(s.toGW, a)
				continue
			}
			return
		}
	}
	s.t.Fatal("simulation did not settle")
}

func checkExactlyOnce(t *testing.T, what string, got []uint64, base uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: %d messages, want %d: %v", what, len(got), n, got)
	}
	for i, v := range got {
		if v != base+uint64(i) {
			t.Fatalf("%s: message %d is %d, want %d (got %v)", what, i, v, base+uint64(i), got)
		}
	}
}

// TestResumeAtEveryPoint cuts the client's connection (same gateway) or
// kills the gateway at every step of a two-way exchange and checks that
// each message is delivered exactly once, in order, in both directions.
func TestResumeAtEveryPoint(t *testing.T) {
	const msgs = 12
	for _, die := range []bool{false, true} {
		for cutAt := 0; cutAt < 120; cutAt++ {
			for _, order := range []int{0, 1, 2, 3} {
				name := fmt.Sprintf("die=%v/cut=%d/order=%d", die, cutAt, order)
				t.Run(name, func(t *testing.T) {
					s := newSim(t)
					sent := 0
					for i := 0; ; i++ {
						if sent < msgs && i%3 == 0 && s.clientSend(uint64(sent+1)) {
							sent++
						}
						if i == cutAt {
							s.cut(die)
						}
						if !s.step(i+order) && sent == msgs && i > cutAt {
							break
						}
						if i > 10000 {
							t.Fatal("no progress")
						}
					}
					s.drain(10000)
					checkExactlyOnce(t, "node received", s.nodeGot, 1, msgs)
					checkExactlyOnce(t, "client received", s.clientGot, 1001, msgs)
				})
			}
		}
	}
}
