package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

// Dest says where an Out goes.
type Dest int

// Destinations of an Out.
const (
	// ToPlayer is one player's client (Account), through the gateway
	// holding its session: an own player or one on another lobby.
	ToPlayer Dest = iota + 1
	// ToPlayers is several own players (Accounts), one message each.
	ToPlayers
	// ToLobbies is every other lobby.
	ToLobbies
	// ToSender is the node whose message is being handled.
	ToSender
	// ToMatch is a call to the match instance that owns Key (a game mode)
	// on the consistent-hash ring, so every ticket of a mode meets at one
	// instance. The reply to a NodeEnqueue goes to Lobby.Enqueued; a call
	// that fails (no instance, no answer in time, the match's error)
	// counts as not delivered.
	ToMatch
	// ToGroup is every member of Group, cluster-wide: one broadcast that
	// each gateway fans out to the members it holds.
	ToGroup
	// JoinGroup is not a message: Account's session joins Group (it stays
	// a member until its session ends).
	JoinGroup
)

func (d Dest) String() string {
	switch d {
	case ToPlayer:
		return "player"
	case ToPlayers:
		return "players"
	case ToLobbies:
		return "lobbies"
	case ToSender:
		return "sender"
	case ToMatch:
		return "match"
	case ToGroup:
		return "group"
	case JoinGroup:
		return "join"
	}
	return fmt.Sprintf("dest(%d)", int(d))
}

// Out is one message the lobby decided to send; the caller encodes Body
// with game.Encode and does the IO.
//
// Outs of one batch are sent in order. When an Out with Fail set cannot
// be handed to a gateway, Fail is sent instead of the rest of the batch:
// that is how "ok" acks depend on the delivery before them.
type Out struct {
	To       Dest
	Account  string   // ToPlayer, JoinGroup
	Accounts []string // ToPlayers, sorted
	Key      string   // ToMatch
	Group    string   // ToGroup, JoinGroup
	Cmd      uint64
	Body     any
	Fail     *Out
}

// Errors of node messages the lobby cannot use (client errors are Acks).
var (
	ErrBadMessage = errors.New("lobby: bad node message")
	ErrNotHere    = errors.New("lobby: player not in this lobby")
)

// Client-facing error texts (Ack.Error / EnterReply.Error). Clients may
// compare "enter first" and "offline"; the others are for people.
const (
	errEnterFirst   = "enter first"
	errOffline      = "offline"
	errBadRequest   = "bad request"
	errUnknownCmd   = "unknown command"
	errBadName      = "bad name"
	errBadText      = "bad text"
	errBadMode      = "bad mode"
	errBadTarget    = "bad target account"
	errQueued       = "already queued for another mode"
	errNoMatchmaker = "matchmaking unavailable"
	errNotSent      = "not sent; try again"
)

// goneTTL is how long a lobby that left is remembered, so a presence it
// sent just before leaving cannot resurrect its players afterwards.
const goneTTL = 10 * time.Minute

// player is one of this lobby's own players.
type player struct {
	name    string
	entered time.Time
	queued  string // the mode it waits in, "" when not queued
	away    bool   // disconnected; its session may resume
}

// remote is a player on another lobby.
type remote struct {
	name  string
	lobby common.NodeID
	away  bool
}

// Lobby is the game logic of one lobby instance: its own players, the
// players of the other lobbies as they announced them, and the decisions
// for every request and node message, returned as Outs. It does no IO,
// reads no clock (callers pass now) and is not safe for concurrent use:
// the caller serialises calls and sends the Outs after releasing its lock.
type Lobby struct {
	self    common.NodeID
	players map[string]*player          // own players by account
	remotes map[string]remote           // other lobbies' players by account
	gone    map[common.NodeID]time.Time // lobbies that left, and when
	lines   map[uint64]uint64           // chat lines accepted from own players, by push cmd
}

// NewLobby returns an empty lobby for the node self.
func NewLobby(self common.NodeID) *Lobby {
	return &Lobby{
		self:    self,
		players: make(map[string]*player),
		remotes: make(map[string]remote),
		gone:    make(map[common.NodeID]time.Time),
		lines:   make(map[uint64]uint64),
	}
}

// Players is the number of own players.
func (l *Lobby) Players() int { return len(l.players) }

// Lines is the number of chat lines own players sent: world or private
// (push is game.PushWorld or game.PushPrivate).
func (l *Lobby) Lines(push uint64) uint64 { return l.lines[push] }

// Entered returns an own player's name and enter time.
func (l *Lobby) Entered(account string) (name string, at time.Time, ok bool) {
	p := l.players[account]
	if p == nil {
		return "", time.Time{}, false
	}
	return p.name, p.entered, true
}

// Online is every player known online, own and remote, sorted by
// account (an account both here and remote is listed once, as here).
func (l *Lobby) Online() []game.Player {
	out := make([]game.Player, 0, len(l.players)+len(l.remotes))
	for a, p := range l.players {
		out = append(out, game.Player{Account: a, Name: p.name, Away: p.away})
	}
	for a, r := range l.remotes {
		if l.players[a] == nil {
			out = append(out, game.Player{Account: a, Name: r.name, Away: r.away})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	return out
}

func (l *Lobby) online(account string) bool {
	_, remote := l.remotes[account]
	return l.players[account] != nil || remote
}

// own returns the own players' accounts, sorted, without except.
func (l *Lobby) own(except string) []string {
	out := make([]string, 0, len(l.players))
	for a := range l.players {
		if a != except {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

// pushOwn is a push to every own player but except; nil when nobody is
// left to tell.
func (l *Lobby) pushOwn(except string, cmd uint64, body any) []Out {
	to := l.own(except)
	if len(to) == 0 {
		return nil
	}
	return []Out{{To: ToPlayers, Accounts: to, Cmd: cmd, Body: body}}
}

// clientCmd is the full client cmd of the n a lobby node receives.
func clientCmd(n uint64) uint64 { return uint64(game.LobbyType)*game.Offset + n }

func reply(account string, cmd uint64, body any) Out {
	return Out{To: ToPlayer, Account: account, Cmd: cmd, Body: body}
}

func ack(account string, cmd uint64, errText string) Out {
	return reply(account, cmd, game.Ack{OK: errText == "", Error: errText})
}

// validLabel reports whether s is 1..max printable characters (runes),
// not only spaces: a player name or a game mode.
func validLabel(s string, max int) bool {
	if strings.TrimSpace(s) == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func textError() string { return fmt.Sprintf("%s: 1 to %d characters", errBadText, game.MaxText) }

func validText(s string) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= game.MaxText
}

// Request handles a player's message: n is the cmd the node received
// (the client's cmd minus the lobby type's offset), body its JSON.
func (l *Lobby) Request(account string, n uint64, body []byte, now time.Time) []Out {
	cmd := clientCmd(n)
	switch cmd {
	case game.CmdEnter:
		return l.enter(account, body, now)
	case game.CmdWorld, game.CmdPrivate, game.CmdOnline, game.CmdQueue:
	default:
		return []Out{ack(account, cmd, errUnknownCmd)}
	}
	p := l.players[account]
	if p == nil {
		return []Out{ack(account, cmd, errEnterFirst)}
	}
	switch cmd {
	case game.CmdWorld:
		return l.world(account, p, body, now)
	case game.CmdPrivate:
		return l.private(account, p, body, now)
	case game.CmdOnline:
		return []Out{reply(account, cmd, game.OnlineList{Online: l.Online()})}
	default: // game.CmdQueue
		return l.queue(account, p, body)
	}
}

// enterReply finds the reply to an enter request among outs.
func enterReply(outs []Out) (game.EnterReply, bool) {
	for _, o := range outs {
		if r, ok := o.Body.(game.EnterReply); ok {
			return r, true
		}
	}
	return game.EnterReply{}, false
}

func (l *Lobby) enter(account string, body []byte, now time.Time) []Out {
	fail := func(e string) []Out {
		return []Out{reply(account, game.CmdEnter, game.EnterReply{Account: account, Online: []game.Player{}, Error: e})}
	}
	var req game.Enter
	if err := game.Decode(body, &req); err != nil {
		return fail(errBadRequest)
	}
	if !validLabel(req.Name, game.MaxName) {
		return fail(fmt.Sprintf("%s: 1 to %d printable characters", errBadName, game.MaxName))
	}
	old := l.players[account]
	p := &player{name: req.Name, entered: now}
	if old != nil {
		p.queued = old.queued // still waiting at the match
	}
	l.players[account] = p
	delete(l.remotes, account) // it is here now
	pres := game.Presence{Player: game.Player{Account: account, Name: req.Name}, Online: true}
	outs := []Out{
		// World lines reach the player from now on (joining again is
		// harmless). The join goes first: the gateway then has the player
		// in the group before the player sees the reply, so a line said
		// after that (by anyone, through any lobby) reaches it.
		{To: JoinGroup, Group: game.WorldGroup, Account: account},
		reply(account, game.CmdEnter, game.EnterReply{OK: true, Account: account, Online: l.Online()}),
		{To: ToLobbies, Cmd: game.NodePresence, Body: pres},
	}
	if old == nil || old.name != req.Name || old.away {
		// Shown away, entering again (from a new session, which brings
		// no resume): the own players see it back.
		outs = append(outs, l.pushOwn(account, game.PushPresence, pres)...)
	}
	return outs
}

func (l *Lobby) world(account string, p *player, body []byte, now time.Time) []Out {
	var req game.WorldChat
	if err := game.Decode(body, &req); err != nil {
		return []Out{ack(account, game.CmdWorld, errBadRequest)}
	}
	if !validText(req.Text) {
		return []Out{ack(account, game.CmdWorld, textError())}
	}
	l.lines[game.PushWorld]++
	line := game.ChatLine{From: account, Name: p.name, Text: req.Text, TS: now.UnixMilli()}
	// One broadcast to the world group: each gateway fans it out to the
	// players it holds, whichever lobby they are in.
	notSent := ack(account, game.CmdWorld, errNotSent)
	return []Out{
		{To: ToGroup, Group: game.WorldGroup, Cmd: game.PushWorld, Body: line, Fail: &notSent},
		ack(account, game.CmdWorld, ""),
	}
}

func (l *Lobby) private(account string, p *player, body []byte, now time.Time) []Out {
	var req game.PrivateChat
	if err := game.Decode(body, &req); err != nil {
		return []Out{ack(account, game.CmdPrivate, errBadRequest)}
	}
	switch {
	case !validText(req.Text):
		return []Out{ack(account, game.CmdPrivate, textError())}
	case req.To == "":
		return []Out{ack(account, game.CmdPrivate, errBadTarget)}
	case !l.online(req.To):
		return []Out{ack(account, game.CmdPrivate, errOffline)}
	}
	l.lines[game.PushPrivate]++
	line := game.ChatLine{From: account, Name: p.name, Text: req.Text, TS: now.UnixMilli()}
	offline := ack(account, game.CmdPrivate, errOffline)
	return []Out{
		{To: ToPlayer, Account: req.To, Cmd: game.PushPrivate, Body: line, Fail: &offline},
		ack(account, game.CmdPrivate, ""),
	}
}

func (l *Lobby) queue(account string, p *player, body []byte) []Out {
	var req game.Queue
	if err := game.Decode(body, &req); err != nil {
		return []Out{ack(account, game.CmdQueue, errBadRequest)}
	}
	if !validLabel(req.Mode, game.MaxName) {
		return []Out{ack(account, game.CmdQueue, fmt.Sprintf("%s: 1 to %d printable characters", errBadMode, game.MaxName))}
	}
	if p.queued != "" && p.queued != req.Mode {
		return []Out{ack(account, game.CmdQueue, errQueued)}
	}
	// Queueing again for the same mode re-sends the ticket: the match
	// ignores a duplicate, and a match instance that lost it gets it back.
	p.queued = req.Mode
	unavailable := ack(account, game.CmdQueue, errNoMatchmaker)
	ticket := game.Ticket{Player: game.Player{Account: account, Name: p.name}, Mode: req.Mode, Lobby: l.self}
	return []Out{
		{To: ToMatch, Key: req.Mode, Cmd: game.NodeEnqueue, Body: ticket, Fail: &unavailable},
		ack(account, game.CmdQueue, ""),
	}
}

// Away marks an own player as disconnected, its session waiting for a
// resume (away true), or back (false): everyone online sees its presence
// change. It reports false for a player not here or already so.
func (l *Lobby) Away(account string, away bool) ([]Out, bool) {
	p := l.players[account]
	if p == nil || p.away == away {
		return nil, false
	}
	p.away = away
	pres := game.Presence{Player: game.Player{Account: account, Name: p.name, Away: away}, Online: true}
	outs := []Out{{To: ToLobbies, Cmd: game.NodePresence, Body: pres}}
	return append(outs, l.pushOwn(account, game.PushPresence, pres)...), true
}

// Lose forgets an own player whose session ended: the other lobbies and
// the own players hear it went offline, and its ticket is withdrawn. ok
// is false (and nothing is sent) when the account had not entered.
func (l *Lobby) Lose(account string) (outs []Out, ok bool) {
	p := l.players[account]
	if p == nil {
		return nil, false
	}
	delete(l.players, account)
	pres := game.Presence{Player: game.Player{Account: account, Name: p.name}}
	outs = []Out{{To: ToLobbies, Cmd: game.NodePresence, Body: pres}}
	outs = append(outs, l.pushOwn("", game.PushPresence, pres)...)
	if p.queued != "" {
		t := game.Ticket{Player: pres.Player, Mode: p.queued, Lobby: l.self}
		outs = append(outs, Out{To: ToMatch, Key: p.queued, Cmd: game.NodeDequeue, Body: t})
	}
	return outs, true
}

// FromLobby handles a message from the lobby from. Errors mean the
// message was dropped.
func (l *Lobby) FromLobby(from common.NodeID, cmd uint64, body []byte) ([]Out, error) {
	switch cmd {
	case game.NodePresence:
		var p game.Presence
		if err := game.Decode(body, &p); err != nil {
			return nil, fmt.Errorf("%w: presence: %w", ErrBadMessage, err)
		}
		if p.Account == "" {
			return nil, fmt.Errorf("%w: presence without an account", ErrBadMessage)
		}
		return l.presence(from, p), nil
	case game.NodeWho:
		outs := make([]Out, 0, len(l.players))
		for _, a := range l.own("") {
			pres := game.Presence{Player: game.Player{Account: a, Name: l.players[a].name}, Online: true}
			outs = append(outs, Out{To: ToSender, Cmd: game.NodePresence, Body: pres})
		}
		return outs, nil
	}
	return nil, fmt.Errorf("%w: unknown lobby cmd %d", ErrBadMessage, cmd)
}

// presence merges another lobby's announcement into the online list and
// tells the own players about a change they can see.
func (l *Lobby) presence(from common.NodeID, p game.Presence) []Out {
	if _, left := l.gone[from]; left {
		return nil // sent before its lobby left; its players are gone
	}
	cur, known := l.remotes[p.Account]
	if p.Online {
		if known && cur.lobby == from && cur.name == p.Name && cur.away == p.Away {
			return nil
		}
		l.remotes[p.Account] = remote{name: p.Name, lobby: from, away: p.Away}
	} else {
		if !known || cur.lobby != from {
			return nil // not the lobby we know it on: a stale or foreign notice
		}
		delete(l.remotes, p.Account)
	}
	if l.players[p.Account] != nil {
		return nil // here too: own players already see it
	}
	return l.pushOwn("", game.PushPresence, p)
}

// Enqueued handles the match's reply to a NodeEnqueue call: when the
// ticket completed a match, the player is told.
func (l *Lobby) Enqueued(reply []byte) ([]Out, error) {
	var r game.Enqueued
	if err := game.Decode(reply, &r); err != nil {
		return nil, fmt.Errorf("%w: enqueued: %w", ErrBadMessage, err)
	}
	if r.Matched == nil {
		return nil, nil
	}
	return l.matched(*r.Matched)
}

// FromMatch handles a call from a match instance.
func (l *Lobby) FromMatch(cmd uint64, body []byte) ([]Out, error) {
	if cmd != game.NodeMatched {
		return nil, fmt.Errorf("%w: unknown match cmd %d", ErrBadMessage, cmd)
	}
	var m game.Matched
	if err := game.Decode(body, &m); err != nil {
		return nil, fmt.Errorf("%w: matched: %w", ErrBadMessage, err)
	}
	return l.matched(m)
}

func (l *Lobby) matched(m game.Matched) ([]Out, error) {
	p := l.players[m.Account]
	if p == nil {
		return nil, fmt.Errorf("%w: matched %q (match %s)", ErrNotHere, m.Account, m.MatchID)
	}
	p.queued = ""
	return []Out{reply(m.Account, game.PushMatched, m)}, nil
}

// LobbyLeft drops the players of a lobby that left the cluster and tells
// the own players they are offline. It also forgets lobbies that left
// more than goneTTL before now.
func (l *Lobby) LobbyLeft(id common.NodeID, now time.Time) []Out {
	for g, at := range l.gone {
		if now.Sub(at) > goneTTL {
			delete(l.gone, g)
		}
	}
	if id == l.self {
		return nil
	}
	l.gone[id] = now
	var dropped []string
	for a, r := range l.remotes {
		if r.lobby == id {
			dropped = append(dropped, a)
		}
	}
	sort.Strings(dropped)
	var outs []Out
	for _, a := range dropped {
		pres := game.Presence{Player: game.Player{Account: a, Name: l.remotes[a].name}}
		delete(l.remotes, a)
		if l.players[a] == nil {
			outs = append(outs, l.pushOwn("", game.PushPresence, pres)...)
		}
	}
	return outs
}

// LobbyJoined notes that a lobby is (again) a member: a lobby removed
// for silence that comes back keeps its ID, and its presence counts again.
func (l *Lobby) LobbyJoined(id common.NodeID) { delete(l.gone, id) }

// Who is the question a starting lobby asks the others: every own player
// of theirs comes back as a NodePresence.
func Who() Out { return Out{To: ToLobbies, Cmd: game.NodeWho, Body: struct{}{}} }
