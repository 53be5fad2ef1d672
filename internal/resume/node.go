package resume

import (
	"errors"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
)

// Errors of NodeCore.Send.
var (
	// ErrStreamFull: the account's stream keeps StreamLimit bytes the
	// client has not acknowledged.
	ErrStreamFull = errors.New("resume: the account's unacknowledged messages exceed the per-account limit")
	// ErrNodeFull: the node keeps TotalLimit unacknowledged bytes.
	ErrNodeFull = errors.New("resume: unacknowledged messages exceed the node's limit")
)

// NodeConfig configures a NodeCore.
type NodeConfig struct {
	StreamLimit int           // bytes kept per account until acknowledged (default 256 KiB)
	TotalLimit  int           // bytes kept for all accounts (default 64 MiB)
	LookupMin   time.Duration // first retry of a failed holder lookup (default 100ms)
	LookupMax   time.Duration // retry cap (default 5s)
	OrphanGrace time.Duration // least wait for a session whose gateway link dropped (default 5s)
	ForgetAfter time.Duration // idle accounts with nothing kept are forgotten after (default 5m)
	// OfflineCache bounds the accounts remembered as offline (lookups that
	// found no session), valid while the logins subscription is up (SubUp);
	// 0 remembers none.
	OfflineCache int
	// OfflineMaxAge, when positive, is the longest an offline answer is
	// used: a bound on the harm of an announcement Pub/Sub lost without
	// the subscription seeing an error.
	OfflineMaxAge time.Duration
	// Rand returns random numbers: the first stream epoch and backoff
	// jitter. Required.
	Rand func() uint32
}

func (c *NodeConfig) fill() {
	if c.StreamLimit <= 0 {
		c.StreamLimit = 256 << 10
	}
	if c.TotalLimit <= 0 {
		c.TotalLimit = 64 << 20
	}
	if c.LookupMin <= 0 {
		c.LookupMin = 100 * time.Millisecond
	}
	if c.LookupMax < c.LookupMin {
		c.LookupMax = max(5*time.Second, c.LookupMin)
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = 5 * time.Second
	}
	if c.ForgetAfter <= 0 {
		c.ForgetAfter = 5 * time.Minute
	}
}

// EventKind says which callback a NodeCore event calls.
type EventKind uint8

// Events a NodeCore asks its caller to report to the game.
const (
	EvLose          EventKind = iota + 1 // the account is no longer bound here (exactly once per ownership)
	EvPaused                             // the bound account's client is away and may resume
	EvResumed                            // the bound account's client is back
	EvUndeliverable                      // a message to the account was dropped (Cmd, Code)
)

// Event is one callback to run.
type Event struct {
	Kind    EventKind
	Account string
	Cmd     uint64 // EvUndeliverable
	Code    uint16 // EvUndeliverable: wire.CodeNoNode (offline) or wire.CodeExpired (session ended)
}

// Frame is one frame to append to a gateway link's queue. Bytes aliases
// the core's memory and is valid until the next call.
type Frame struct {
	GW    common.NodeID
	Bytes []byte
}

// Output is what one NodeCore call asks the caller to do. It is reused by
// the next call.
type Output struct {
	Frames  []Frame
	Lookups []string // accounts whose holder to look up
	Events  []Event
}

func (o *Output) reset() {
	o.Frames, o.Lookups, o.Events = o.Frames[:0], o.Lookups[:0], o.Events[:0]
}

type holderState uint8

const (
	holderUnknown holderState = iota // nobody asked
	holderLookup                     // a lookup is running or due
	holderKnown                      // gw holds session sid
	holderDown                       // gw held it, but the link to gw dropped
)

type ownState uint8

const (
	ownNone     ownState = iota
	ownLive              // bound here, client online
	ownPaused            // bound here, client away (SessionPaused)
	ownOrphaned          // bound here, link to the holder dropped
)

// account is everything a node tracks about one account.
type account struct {
	name string

	hs        holderState
	gw        common.NodeID
	sid       uint64
	lookupDue time.Time
	backoff   time.Duration
	lookGen   uint64 // the subscription generation the running lookup was issued in (0: not up)
	announced bool   // a login of the account was announced while the lookup ran
	downSince time.Time

	out    OutStream
	kick   []byte // a Kick frame waiting for the holder
	kicked bool   // a CodeLost kick was sent for the overflow

	own      ownState
	osid     uint64
	ogw      common.NodeID
	window   time.Duration
	deadline time.Time

	in *Inbound

	used time.Time
}

// NodeCore is a node's state of every account it exchanges messages with:
// where the session is held, the outbound stream, ownership and the
// inbound window. See the package doc.
type NodeCore struct {
	cfg      NodeConfig
	accounts map[string]*account
	total    int
	epoch0   uint32 // first epoch issued
	issued   uint32 // epochs issued
	out      Output
	links    map[common.NodeID]bool

	off      offlineCache
	offStats OfflineStats
	subUp    bool   // the logins subscription is confirmed
	subGen   uint64 // bumped whenever cached answers stop being trustworthy
}

// NewNodeCore returns an empty core.
func NewNodeCore(cfg NodeConfig) *NodeCore {
	cfg.fill()
	c := &NodeCore{cfg: cfg, accounts: make(map[string]*account), links: make(map[common.NodeID]bool)}
	c.off.init(cfg.OfflineCache)
	c.epoch0 = cfg.Rand()
	return c
}

// Bytes is the number of unacknowledged bytes kept for all accounts.
func (c *NodeCore) Bytes() int { return c.total }

// Accounts is the number of accounts tracked.
func (c *NodeCore) Accounts() int { return len(c.accounts) }

// Owned reports whether account is bound here (live, paused or orphaned).
func (c *NodeCore) Owned(account string) bool {
	a := c.accounts[account]
	return a != nil && a.own != ownNone
}

func (c *NodeCore) begin() *Output { c.out.reset(); return &c.out }

func (c *NodeCore) get(name string, now time.Time) *account {
	a := c.accounts[name]
	if a == nil {
		a = &account{name: name}
		c.accounts[name] = a
	}
	a.used = now
	return a
}

func (c *NodeCore) newEpoch() uint32 {
	for {
		c.issued++
		if e := c.epoch0 + c.issued; e != 0 {
			return e
		}
	}
}

// issuedHere reports whether this core issued epoch e.
func (c *NodeCore) issuedHere(e uint32) bool {
	d := e - c.epoch0
	return d >= 1 && d <= c.issued
}

// send appends a frame to gw's queue.
func (c *NodeCore) send(gw common.NodeID, b []byte) {
	if len(b) > 0 {
		c.out.Frames = append(c.out.Frames, Frame{GW: gw, Bytes: b})
	}
}

// flush sends what the account's holder has not seen yet.
func (c *NodeCore) flush(a *account) {
	if a.hs != holderKnown {
		return
	}
	c.send(a.gw, a.out.Unsent())
	if a.kick != nil {
		c.send(a.gw, a.kick)
		a.kick = nil
	}
}

// setHolder records that gw holds session sid of the account; a new
// session renumbers the stream, and a new holder gets every kept frame.
func (c *NodeCore) setHolder(a *account, gw common.NodeID, sid uint64) {
	if a.hs == holderKnown && a.gw == gw && a.sid == sid {
		return
	}
	a.hs, a.gw, a.sid, a.backoff = holderKnown, gw, sid, 0
	if c.off.remove(a.name) {
		c.offStats.Invalidations++
	}
	if a.out.Session() != sid {
		a.out.Rebase(sid, c.newEpoch())
	} else {
		a.out.Resent()
	}
}

// needHolder starts a lookup unless one is running.
func (c *NodeCore) needHolder(a *account, now time.Time) {
	switch a.hs {
	case holderLookup, holderDown:
		return
	}
	a.hs = holderLookup
	a.lookupDue = time.Time{}
	c.issueLookup(a)
}

// issueLookup asks for a lookup of a's holder, noting the subscription
// generation it starts in: only an answer from an unbroken subscription,
// with no login of the account announced meanwhile, may be cached.
func (c *NodeCore) issueLookup(a *account) {
	a.announced = false
	a.lookGen = 0
	if c.subUp {
		a.lookGen = c.subGen
	}
	c.out.Lookups = append(c.out.Lookups, a.name)
}

// Send queues a message to account's client. It fails when the stream or
// the node would keep more than its limit; the first overflow of a live
// session also kicks it with CodeLost (its messages can no longer be kept).
func (c *NodeCore) Send(now time.Time, name string, cmd uint64, data []byte) (*Output, error) {
	out := c.begin()
	if c.knownOffline(name, now) {
		// Known offline: undeliverable at once, as a lookup would find.
		out.Events = append(out.Events, Event{Kind: EvUndeliverable, Account: name, Cmd: cmd, Code: wire.CodeNoNode})
		if a := c.accounts[name]; a != nil {
			a.used = now
			a.kick = nil
		}
		return out, nil
	}
	a := c.get(name, now)
	n := wire.PushSizeFor(name, len(data))
	var err error
	switch {
	case a.out.Bytes()+n > c.cfg.StreamLimit:
		err = ErrStreamFull
	case c.total+n > c.cfg.TotalLimit:
		err = ErrNodeFull
	}
	if err != nil {
		if !a.kicked && a.hs == holderKnown {
			a.kicked = true
			c.send(a.gw, wire.AppendKick(nil, name, wire.CodeLost, "messages could not be kept; log in again"))
		}
		return out, err
	}
	var flags uint8
	if a.own != ownNone && (a.out.Session() == 0 || a.osid == a.out.Session()) {
		flags = wire.PushOwner
	}
	c.total += a.out.Append(name, flags, cmd, data)
	switch a.hs {
	case holderKnown:
		c.flush(a)
	case holderUnknown:
		c.needHolder(a, now)
	}
	return out, nil
}

// Kick asks the gateway holding account's session to end it with code
// (0 = wire.CodeKicked).
func (c *NodeCore) Kick(now time.Time, name string, code uint16, reason string) *Output {
	out := c.begin()
	if c.knownOffline(name, now) {
		return out // no session to end
	}
	a := c.get(name, now)
	a.kick = wire.AppendKick(nil, name, code, reason)
	switch a.hs {
	case holderKnown:
		c.flush(a)
	case holderUnknown:
		c.needHolder(a, now)
	}
	return out
}

// Holder is a lookup's answer: gw holds session sid of account.
func (c *NodeCore) Holder(now time.Time, name string, gw common.NodeID, sid uint64) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a == nil || a.hs != holderLookup {
		return out // learned otherwise meanwhile
	}
	if !c.links[gw] {
		// Not linked to that gateway (yet): try again shortly.
		c.retry(a, now)
		return out
	}
	c.setHolder(a, gw, sid)
	c.flush(a)
	return out
}

// Offline is a lookup's answer: the account has no session. Its kept
// messages are dropped and reported undeliverable.
func (c *NodeCore) Offline(now time.Time, name string) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a == nil || a.hs != holderLookup {
		return out
	}
	if a.announced {
		// The account's login was announced while the lookup ran: the
		// answer may have been read before the login. Look again rather
		// than drop messages the player can now get.
		c.offStats.Relooked++
		c.issueLookup(a)
		return out
	}
	a.hs = holderUnknown
	c.dropStream(a, wire.CodeNoNode)
	a.kick = nil
	if c.subUp && a.lookGen != 0 && a.lookGen == c.subGen && c.cfg.OfflineCache > 0 {
		c.offStats.Cached++
		if c.off.add(name, now) {
			c.offStats.Evictions++
		}
	}
	if a.own == ownNone && a.in == nil {
		// Nothing to remember about an account messaged while offline:
		// forgetting it at once keeps a flood of messages to random
		// accounts from holding memory for ForgetAfter.
		delete(c.accounts, name)
	}
	return out
}

// LookupFailed is a lookup that could not be answered (Redis down): it is
// retried with jittered exponential backoff.
func (c *NodeCore) LookupFailed(now time.Time, name string) *Output {
	out := c.begin()
	if a := c.accounts[name]; a != nil && a.hs == holderLookup {
		c.retry(a, now)
	}
	return out
}

func (c *NodeCore) retry(a *account, now time.Time) {
	a.backoff = min(max(2*a.backoff, c.cfg.LookupMin), c.cfg.LookupMax)
	j := time.Duration(uint64(a.backoff) * uint64(c.cfg.Rand()%1024) / 2048) // up to half again
	a.lookupDue = now.Add(a.backoff/2 + j)
}

func (c *NodeCore) dropStream(a *account, code uint16) {
	if a.out.Len() == 0 && a.out.Session() == 0 {
		return
	}
	c.total -= a.out.Drop(a.name, func(cmd uint64) {
		c.out.Events = append(c.out.Events, Event{Kind: EvUndeliverable, Account: a.name, Cmd: cmd, Code: code})
	})
	a.kicked = false
}

// LinkUp says a link to gw is established: sessions held there whose link
// dropped get every kept frame again, and accounts bound here ask whether
// they still are (Claim).
func (c *NodeCore) LinkUp(now time.Time, gw common.NodeID) *Output {
	out := c.begin()
	c.links[gw] = true
	for _, a := range c.accounts {
		if a.hs == holderDown && a.gw == gw {
			a.hs = holderKnown
			a.out.Resent()
			c.flush(a)
		}
		if a.own == ownOrphaned && a.ogw == gw {
			c.send(gw, wire.AppendRef(nil, wire.KindClaim, a.name, a.osid))
		}
	}
	return out
}

// LinkDown says the link to gw is gone: its sessions wait for a resume
// elsewhere or the link's return; accounts bound here are orphaned until
// then, at most their resume window (and OrphanGrace).
func (c *NodeCore) LinkDown(now time.Time, gw common.NodeID) *Output {
	out := c.begin()
	delete(c.links, gw)
	for _, a := range c.accounts {
		if a.hs == holderKnown && a.gw == gw {
			a.hs, a.downSince = holderDown, now
		}
		if (a.own == ownLive || a.own == ownPaused) && a.ogw == gw {
			if a.own == ownLive {
				out.Events = append(out.Events, Event{Kind: EvPaused, Account: a.name})
			}
			a.own = ownOrphaned
			a.deadline = now.Add(max(a.window, c.cfg.OrphanGrace))
		}
	}
	return out
}

// Deliver records client message csq of session sid of account, received
// from gw; it reports whether the message is new (false: a duplicate to
// drop). The session's holder is learned from it.
func (c *NodeCore) Deliver(now time.Time, gw common.NodeID, name string, sid uint64, csq uint32) (*Output, bool) {
	out := c.begin()
	a := c.get(name, now)
	if a.hs != holderKnown || a.gw != gw || a.sid != sid {
		c.setHolder(a, gw, sid)
		c.flush(a)
	}
	if csq == 0 {
		return out, true
	}
	if a.in == nil {
		a.in = &Inbound{}
	}
	return out, a.in.Accept(sid, csq)
}

// Delivered is the client's acknowledgement of epoch's frames through seq.
func (c *NodeCore) Delivered(now time.Time, gw common.NodeID, name string, sid uint64, epoch, seq uint32) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a == nil || a.out.Session() != sid || a.out.Epoch() != epoch {
		return out
	}
	a.used = now
	c.total -= a.out.Ack(seq)
	return out
}

// Resend asks for epoch's frames again from seq (the gateway saw a gap).
func (c *NodeCore) Resend(now time.Time, gw common.NodeID, name string, sid uint64, epoch, from uint32) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a == nil || a.out.Session() != sid || a.out.Epoch() != epoch {
		return out
	}
	a.used = now
	c.setHolder(a, gw, sid)
	c.send(gw, a.out.From(from))
	return out
}

// NotHere says gw holds no session sid of account: if that is where the
// stream was going, the holder is looked up again.
func (c *NodeCore) NotHere(now time.Time, gw common.NodeID, name string, sid uint64) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a == nil || a.gw != gw || a.sid != sid || (a.hs != holderKnown && a.hs != holderDown) {
		return out
	}
	a.hs = holderUnknown
	if a.out.Len() > 0 || a.kick != nil {
		c.needHolder(a, now)
	}
	return out
}

// SessionOnline says account is bound here, online at gw in session sid.
func (c *NodeCore) SessionOnline(now time.Time, gw common.NodeID, name string, sid uint64, window time.Duration) *Output {
	out := c.begin()
	a := c.get(name, now)
	if (a.own == ownPaused || a.own == ownOrphaned) && a.osid == sid {
		out.Events = append(out.Events, Event{Kind: EvResumed, Account: name})
	}
	a.own, a.osid, a.ogw, a.window = ownLive, sid, gw, window
	c.setHolder(a, gw, sid)
	c.flush(a)
	return out
}

// SessionPaused says account's client (session sid at gw) is away.
func (c *NodeCore) SessionPaused(now time.Time, gw common.NodeID, name string, sid uint64) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a != nil && a.own == ownLive && a.osid == sid && a.ogw == gw {
		a.own = ownPaused
		out.Events = append(out.Events, Event{Kind: EvPaused, Account: name})
	}
	return out
}

// Lose says account is no longer bound here: the session ended (from the
// gateway holding it) or the binding moved (from any gateway). It fires
// EvLose once per ownership.
func (c *NodeCore) Lose(now time.Time, gw common.NodeID, name string, sid uint64, reason uint8) *Output {
	out := c.begin()
	a := c.accounts[name]
	if a == nil || a.own == ownNone || a.osid != sid || (reason != wire.LoseMoved && a.ogw != gw) {
		return out
	}
	a.own = ownNone
	out.Events = append(out.Events, Event{Kind: EvLose, Account: name})
	if reason == wire.LoseEnded && a.out.Session() == sid {
		c.dropStream(a, wire.CodeExpired)
		a.hs = holderUnknown
	}
	return out
}

// Resume says gw now holds session sid of account and wants this node's
// state: the answer (ResumeState) and every frame from the positions the
// client listed (streams), or from the first unacknowledged one.
func (c *NodeCore) Resume(now time.Time, gw common.NodeID, name string, sid uint64, streams []wire.EpochFrom) *Output {
	out := c.begin()
	a := c.get(name, now)
	st := wire.ResumeState{SessRef: wire.SessRef{Sid: sid}}
	if a.in != nil && a.in.Session() == sid {
		st.Hi, st.Bitmap = a.in.State()
	}
	from := uint32(0)
	for _, e := range streams {
		status := uint8(wire.StreamLost)
		switch {
		case a.out.Session() == sid && a.out.Epoch() == e.Epoch:
			status, from = wire.StreamOK, e.From
		case c.issuedHere(e.Epoch):
			status = wire.StreamForgotten
		}
		st.Streams = append(st.Streams, wire.EpochStatus{Epoch: e.Epoch, Status: status})
	}
	c.send(gw, wire.AppendResumeState(nil, name, &st))
	if a.own != ownNone && a.osid == sid && a.own != ownLive {
		// Bound here and away: SessionOnline follows from the new holder.
		a.ogw = gw
	}
	known := a.out.Session() == sid
	c.setHolder(a, gw, sid)
	if known {
		c.send(gw, a.out.From(max(from, 1)))
	} else {
		c.flush(a)
	}
	if a.kick != nil {
		c.send(gw, a.kick)
		a.kick = nil
	}
	return out
}

// Tick runs lookups that are due, ends orphaned ownerships whose wait is
// over, and forgets idle accounts.
func (c *NodeCore) Tick(now time.Time) *Output {
	out := c.begin()
	for name, a := range c.accounts {
		if a.hs == holderLookup && !a.lookupDue.IsZero() && !now.Before(a.lookupDue) {
			a.lookupDue = time.Time{}
			c.issueLookup(a)
		}
		if a.hs == holderDown && now.Sub(a.downSince) > c.cfg.OrphanGrace+a.window && a.out.Len() > 0 {
			// The gateway did not come back and nobody resumed the
			// session elsewhere: look it up.
			a.hs = holderUnknown
			c.needHolder(a, now)
		}
		if a.own == ownOrphaned && !now.Before(a.deadline) {
			a.own = ownNone
			out.Events = append(out.Events, Event{Kind: EvLose, Account: name})
		}
		if a.own == ownNone && a.out.Len() == 0 && a.kick == nil && a.hs != holderLookup && now.Sub(a.used) > c.cfg.ForgetAfter {
			delete(c.accounts, name)
		}
	}
	return out
}
