package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

var (
	self   = common.NodeID{1}
	lobby2 = common.NodeID{2}
	lobby3 = common.NodeID{3}
	t0     = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
)

// n is the cmd the lobby node receives for a client cmd.
func n(cmd uint64) uint64 { return cmd - uint64(game.LobbyType)*game.Offset }

func body(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func p(account, name string) game.Player { return game.Player{Account: account, Name: name} }

func online(account, name string, on bool) game.Presence {
	return game.Presence{Player: p(account, name), Online: on}
}

func ackOut(account string, cmd uint64, e string) Out {
	return Out{To: ToPlayer, Account: account, Cmd: cmd, Body: game.Ack{OK: e == "", Error: e}}
}

func push(cmd uint64, b any, to ...string) Out {
	return Out{To: ToPlayers, Accounts: to, Cmd: cmd, Body: b}
}

func lobbies(cmd uint64, b any) Out { return Out{To: ToLobbies, Cmd: cmd, Body: b} }

// enter makes account enter as name, failing the test if it is refused.
func enter(t *testing.T, l *Lobby, account, name string) {
	t.Helper()
	outs := l.Request(account, n(game.CmdEnter), body(t, game.Enter{Name: name}), t0)
	if r, ok := enterReply(outs); !ok || !r.OK {
		t.Fatalf("enter %s: %+v", account, outs)
	}
}

// remoteOn announces account as online on lobby from.
func remoteOn(t *testing.T, l *Lobby, from common.NodeID, account, name string) {
	t.Helper()
	if _, err := l.FromLobby(from, game.NodePresence, body(t, online(account, name, true))); err != nil {
		t.Fatal(err)
	}
}

func same(t *testing.T, got, want []Out) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outs:\n got %+v\nwant %+v", got, want)
	}
}

func TestRequests(t *testing.T) {
	long := strings.Repeat("x", game.MaxText+1)
	tests := []struct {
		name    string
		setup   func(t *testing.T, l *Lobby)
		account string
		cmd     uint64
		body    string
		want    []Out
	}{
		{
			// The join before the reply: a world line said after the
			// player saw the reply must reach it (the resume demo lost
			// one in about 1 run of 10 when the reply went first).
			name: "enter: first player", account: "a", cmd: game.CmdEnter, body: `{"name":"Ann"}`,
			want: []Out{
				{To: JoinGroup, Group: game.WorldGroup, Account: "a"},
				{To: ToPlayer, Account: "a", Cmd: game.CmdEnter, Body: game.EnterReply{OK: true, Account: "a", Online: []game.Player{p("a", "Ann")}}},
				lobbies(game.NodePresence, online("a", "Ann", true)),
			},
		},
		{
			name: "enter: sees own and remote players, others hear of it",
			setup: func(t *testing.T, l *Lobby) {
				enter(t, l, "c", "Cid")
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			account: "a", cmd: game.CmdEnter, body: `{"name":"Ann"}`,
			want: []Out{
				{To: JoinGroup, Group: game.WorldGroup, Account: "a"},
				{To: ToPlayer, Account: "a", Cmd: game.CmdEnter, Body: game.EnterReply{OK: true, Account: "a", Online: []game.Player{p("a", "Ann"), p("b", "Bo"), p("c", "Cid")}}},
				lobbies(game.NodePresence, online("a", "Ann", true)),
				push(game.PushPresence, online("a", "Ann", true), "c"),
			},
		},
		{
			name:    "enter again, same name: lobbies re-told, own players not",
			setup:   func(t *testing.T, l *Lobby) { enter(t, l, "a", "Ann"); enter(t, l, "c", "Cid") },
			account: "a", cmd: game.CmdEnter, body: `{"name":"Ann"}`,
			want: []Out{
				{To: JoinGroup, Group: game.WorldGroup, Account: "a"},
				{To: ToPlayer, Account: "a", Cmd: game.CmdEnter, Body: game.EnterReply{OK: true, Account: "a", Online: []game.Player{p("a", "Ann"), p("c", "Cid")}}},
				lobbies(game.NodePresence, online("a", "Ann", true)),
			},
		},
		{
			name: "enter again while shown away: own players see it back",
			setup: func(t *testing.T, l *Lobby) {
				enter(t, l, "a", "Ann")
				enter(t, l, "c", "Cid")
				l.Away("a", true)
			},
			account: "a", cmd: game.CmdEnter, body: `{"name":"Ann"}`,
			want: []Out{
				{To: JoinGroup, Group: game.WorldGroup, Account: "a"},
				{To: ToPlayer, Account: "a", Cmd: game.CmdEnter, Body: game.EnterReply{OK: true, Account: "a", Online: []game.Player{p("a", "Ann"), p("c", "Cid")}}},
				lobbies(game.NodePresence, online("a", "Ann", true)),
				push(game.PushPresence, online("a", "Ann", true), "c"),
			},
		},
		{
			name:    "enter again, new name",
			setup:   func(t *testing.T, l *Lobby) { enter(t, l, "a", "Ann"); enter(t, l, "c", "Cid") },
			account: "a", cmd: game.CmdEnter, body: `{"name":"Anna"}`,
			want: []Out{
				{To: JoinGroup, Group: game.WorldGroup, Account: "a"},
				{To: ToPlayer, Account: "a", Cmd: game.CmdEnter, Body: game.EnterReply{OK: true, Account: "a", Online: []game.Player{p("a", "Anna"), p("c", "Cid")}}},
				lobbies(game.NodePresence, online("a", "Anna", true)),
				push(game.PushPresence, online("a", "Anna", true), "c"),
			},
		},
		{
			name: "enter: 32 wide characters are fine", account: "a", cmd: game.CmdEnter,
			body: `{"name":"` + strings.Repeat("名", game.MaxName) + `"}`,
			want: []Out{
				{To: JoinGroup, Group: game.WorldGroup, Account: "a"},
				{To: ToPlayer, Account: "a", Cmd: game.CmdEnter, Body: game.EnterReply{OK: true, Account: "a", Online: []game.Player{p("a", strings.Repeat("名", game.MaxName))}}},
				lobbies(game.NodePresence, online("a", strings.Repeat("名", game.MaxName), true)),
			},
		},
		{name: "enter: bad JSON", account: "a", cmd: game.CmdEnter, body: `{"name":`, want: []Out{enterErr("a", errBadRequest)}},
		{name: "enter: empty body", account: "a", cmd: game.CmdEnter, body: ``, want: []Out{enterErr("a", errBadRequest)}},
		{name: "enter: no name", account: "a", cmd: game.CmdEnter, body: `{}`, want: []Out{enterErr("a", nameErr)}},
		{name: "enter: blank name", account: "a", cmd: game.CmdEnter, body: `{"name":"   "}`, want: []Out{enterErr("a", nameErr)}},
		{name: "enter: control character", account: "a", cmd: game.CmdEnter, body: `{"name":"a\nb"}`, want: []Out{enterErr("a", nameErr)}},
		{name: "enter: name too long", account: "a", cmd: game.CmdEnter, body: `{"name":"` + strings.Repeat("x", game.MaxName+1) + `"}`, want: []Out{enterErr("a", nameErr)}},

		{name: "world before enter", account: "a", cmd: game.CmdWorld, body: `{"text":"hi"}`, want: []Out{ackOut("a", game.CmdWorld, errEnterFirst)}},
		{name: "private before enter", account: "a", cmd: game.CmdPrivate, body: `{}`, want: []Out{ackOut("a", game.CmdPrivate, errEnterFirst)}},
		{name: "online before enter", account: "a", cmd: game.CmdOnline, body: `{}`, want: []Out{ackOut("a", game.CmdOnline, errEnterFirst)}},
		{name: "queue before enter", account: "a", cmd: game.CmdQueue, body: `{"mode":"duel"}`, want: []Out{ackOut("a", game.CmdQueue, errEnterFirst)}},
		{name: "unknown cmd", account: "a", cmd: 4999, body: `{}`, want: []Out{ackOut("a", 4999, errUnknownCmd)}},

		{
			name: "world: one broadcast to the world group",
			setup: func(t *testing.T, l *Lobby) {
				enter(t, l, "a", "Ann")
				enter(t, l, "c", "Cid")
			},
			account: "a", cmd: game.CmdWorld, body: `{"text":"hello"}`,
			want: []Out{
				{To: ToGroup, Group: game.WorldGroup, Cmd: game.PushWorld, Body: game.ChatLine{From: "a", Name: "Ann", Text: "hello", TS: t0.UnixMilli()},
					Fail: &Out{To: ToPlayer, Account: "a", Cmd: game.CmdWorld, Body: game.Ack{Error: errNotSent}}},
				ackOut("a", game.CmdWorld, ""),
			},
		},
		{name: "world: bad JSON", setup: entered, account: "a", cmd: game.CmdWorld, body: `[`, want: []Out{ackOut("a", game.CmdWorld, errBadRequest)}},
		{name: "world: empty", setup: entered, account: "a", cmd: game.CmdWorld, body: `{"text":""}`, want: []Out{ackOut("a", game.CmdWorld, textError())}},
		{name: "world: too long", setup: entered, account: "a", cmd: game.CmdWorld, body: `{"text":"` + long + `"}`, want: []Out{ackOut("a", game.CmdWorld, textError())}},

		{name: "private: offline", setup: entered, account: "a", cmd: game.CmdPrivate, body: `{"to":"nobody","text":"hi"}`, want: []Out{ackOut("a", game.CmdPrivate, errOffline)}},
		{name: "private: no target", setup: entered, account: "a", cmd: game.CmdPrivate, body: `{"text":"hi"}`, want: []Out{ackOut("a", game.CmdPrivate, errBadTarget)}},
		{name: "private: too long", setup: entered, account: "a", cmd: game.CmdPrivate, body: `{"to":"a","text":"` + long + `"}`, want: []Out{ackOut("a", game.CmdPrivate, textError())}},
		{
			name: "private: to a player on another lobby",
			setup: func(t *testing.T, l *Lobby) {
				enter(t, l, "a", "Ann")
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			account: "a", cmd: game.CmdPrivate, body: `{"to":"b","text":"psst"}`,
			want: []Out{
				{To: ToPlayer, Account: "b", Cmd: game.PushPrivate, Body: game.ChatLine{From: "a", Name: "Ann", Text: "psst", TS: t0.UnixMilli()},
					Fail: &Out{To: ToPlayer, Account: "a", Cmd: game.CmdPrivate, Body: game.Ack{Error: errOffline}}},
				ackOut("a", game.CmdPrivate, ""),
			},
		},

		{
			name: "online: own and remote, sorted, deduplicated",
			setup: func(t *testing.T, l *Lobby) {
				enter(t, l, "c", "Cid")
				enter(t, l, "a", "Ann")
				remoteOn(t, l, lobby2, "b", "Bo")
				remoteOn(t, l, lobby2, "c", "Cid elsewhere")
			},
			account: "a", cmd: game.CmdOnline, body: ``,
			want: []Out{{To: ToPlayer, Account: "a", Cmd: game.CmdOnline, Body: game.OnlineList{Online: []game.Player{p("a", "Ann"), p("b", "Bo"), p("c", "Cid")}}}},
		},

		{
			name: "queue: ticket to the mode's match instance", setup: entered,
			account: "a", cmd: game.CmdQueue, body: `{"mode":"duel"}`,
			want: []Out{
				{To: ToMatch, Key: "duel", Cmd: game.NodeEnqueue, Body: game.Ticket{Player: p("a", "Ann"), Mode: "duel", Lobby: self},
					Fail: &Out{To: ToPlayer, Account: "a", Cmd: game.CmdQueue, Body: game.Ack{Error: errNoMatchmaker}}},
				ackOut("a", game.CmdQueue, ""),
			},
		},
		{
			name: "queue: again, same mode, re-sends",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				l.Request("a", n(game.CmdQueue), []byte(`{"mode":"duel"}`), t0)
			},
			account: "a", cmd: game.CmdQueue, body: `{"mode":"duel"}`,
			want: []Out{
				{To: ToMatch, Key: "duel", Cmd: game.NodeEnqueue, Body: game.Ticket{Player: p("a", "Ann"), Mode: "duel", Lobby: self},
					Fail: &Out{To: ToPlayer, Account: "a", Cmd: game.CmdQueue, Body: game.Ack{Error: errNoMatchmaker}}},
				ackOut("a", game.CmdQueue, ""),
			},
		},
		{
			name: "queue: another mode while waiting",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				l.Request("a", n(game.CmdQueue), []byte(`{"mode":"duel"}`), t0)
			},
			account: "a", cmd: game.CmdQueue, body: `{"mode":"brawl"}`,
			want: []Out{ackOut("a", game.CmdQueue, errQueued)},
		},
		{name: "queue: bad mode", setup: entered, account: "a", cmd: game.CmdQueue, body: `{"mode":""}`, want: []Out{ackOut("a", game.CmdQueue, modeErr)}},
		{name: "queue: bad JSON", setup: entered, account: "a", cmd: game.CmdQueue, body: `"duel"`, want: []Out{ackOut("a", game.CmdQueue, errBadRequest)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLobby(self)
			if tt.setup != nil {
				tt.setup(t, l)
			}
			same(t, l.Request(tt.account, n(tt.cmd), []byte(tt.body), t0), tt.want)
		})
	}
}

var (
	nameErr = errBadName + ": 1 to 32 printable characters"
	modeErr = errBadMode + ": 1 to 32 printable characters"
)

func entered(t *testing.T, l *Lobby) { enter(t, l, "a", "Ann") }

func enterErr(account, e string) Out {
	return Out{To: ToPlayer, Account: account, Cmd: game.CmdEnter, Body: game.EnterReply{Account: account, Online: []game.Player{}, Error: e}}
}

func TestEnterReplyJSON(t *testing.T) {
	// An empty online list is [], not null; an error reply still parses
	// as an Ack.
	l := NewLobby(self)
	outs := l.Request("a", n(game.CmdEnter), []byte(`{"name":""}`), t0)
	b, err := game.Encode(outs[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ok":false,"account":"a","online":[],"error":"` + nameErr + `"}`; string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	var a game.Ack
	if err := game.Decode(b, &a); err != nil || a.OK || a.Error != nameErr {
		t.Errorf("as an Ack: %+v %v", a, err)
	}
}

func TestLinesAndEntered(t *testing.T) {
	l := NewLobby(self)
	enter(t, l, "a", "Ann")
	remoteOn(t, l, lobby2, "b", "Bo")
	l.Request("a", n(game.CmdWorld), []byte(`{"text":"1"}`), t0)
	l.Request("a", n(game.CmdWorld), []byte(`{"text":""}`), t0) // refused: not counted
	l.Request("a", n(game.CmdPrivate), []byte(`{"to":"b","text":"2"}`), t0)
	l.Request("a", n(game.CmdPrivate), []byte(`{"to":"x","text":"3"}`), t0) // offline: not counted
	if w, p := l.Lines(game.PushWorld), l.Lines(game.PushPrivate); w != 1 || p != 1 {
		t.Errorf("lines world %d private %d, want 1 1", w, p)
	}
	if name, at, ok := l.Entered("a"); !ok || name != "Ann" || !at.Equal(t0) {
		t.Errorf("Entered = %q %v %t", name, at, ok)
	}
	if l.Players() != 1 {
		t.Errorf("players %d", l.Players())
	}
}

func TestFromLobby(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, l *Lobby)
		from    common.NodeID
		cmd     uint64
		body    string
		want    []Out
		wantErr error
		online  []game.Player
	}{
		{
			name: "presence: new remote player, own players told", setup: entered,
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":true}`,
			want:   []Out{push(game.PushPresence, online("b", "Bo", true), "a")},
			online: []game.Player{p("a", "Ann"), p("b", "Bo")},
		},
		{
			name: "presence: repeated, nothing to tell",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":true}`,
			online: []game.Player{p("a", "Ann"), p("b", "Bo")},
		},
		{
			name: "presence: renamed",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","name":"Bob","online":true}`,
			want:   []Out{push(game.PushPresence, online("b", "Bob", true), "a")},
			online: []game.Player{p("a", "Ann"), p("b", "Bob")},
		},
		{
			name: "presence: offline",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":false}`,
			want:   []Out{push(game.PushPresence, online("b", "Bo", false), "a")},
			online: []game.Player{p("a", "Ann")},
		},
		{
			name: "presence: offline from a lobby it is not on is stale",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			from: lobby3, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":false}`,
			online: []game.Player{p("a", "Ann"), p("b", "Bo")},
		},
		{
			name: "presence: moved to another lobby",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				remoteOn(t, l, lobby2, "b", "Bo")
			},
			from: lobby3, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":true}`,
			want:   []Out{push(game.PushPresence, online("b", "Bo", true), "a")},
			online: []game.Player{p("a", "Ann"), p("b", "Bo")},
		},
		{
			name: "presence: unknown player offline", setup: entered,
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","online":false}`,
			online: []game.Player{p("a", "Ann")},
		},
		{
			name: "presence: of an own player, own players not told", setup: entered,
			from: lobby2, cmd: game.NodePresence, body: `{"account":"a","name":"Ann","online":true}`,
			online: []game.Player{p("a", "Ann")},
		},
		{
			name: "presence: from a lobby that left",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				l.LobbyLeft(lobby2, t0)
			},
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":true}`,
			online: []game.Player{p("a", "Ann")},
		},
		{
			name: "presence: from a lobby that left and came back",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				l.LobbyLeft(lobby2, t0)
				l.LobbyJoined(lobby2)
			},
			from: lobby2, cmd: game.NodePresence, body: `{"account":"b","name":"Bo","online":true}`,
			want:   []Out{push(game.PushPresence, online("b", "Bo", true), "a")},
			online: []game.Player{p("a", "Ann"), p("b", "Bo")},
		},
		{name: "presence: bad JSON", from: lobby2, cmd: game.NodePresence, body: `{`, wantErr: ErrBadMessage, online: []game.Player{}},
		{name: "presence: no account", from: lobby2, cmd: game.NodePresence, body: `{"online":true}`, wantErr: ErrBadMessage, online: []game.Player{}},
		{
			name: "who: one presence per own player, to the asker",
			setup: func(t *testing.T, l *Lobby) {
				enter(t, l, "c", "Cid")
				enter(t, l, "a", "Ann")
				remoteOn(t, l, lobby3, "b", "Bo")
			},
			from: lobby2, cmd: game.NodeWho, body: `{}`,
			want: []Out{
				{To: ToSender, Cmd: game.NodePresence, Body: online("a", "Ann", true)},
				{To: ToSender, Cmd: game.NodePresence, Body: online("c", "Cid", true)},
			},
			online: []game.Player{p("a", "Ann"), p("b", "Bo"), p("c", "Cid")},
		},
		{name: "unknown cmd", from: lobby2, cmd: 99, body: `{}`, wantErr: ErrBadMessage, online: []game.Player{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLobby(self)
			if tt.setup != nil {
				tt.setup(t, l)
			}
			outs, err := l.FromLobby(tt.from, tt.cmd, []byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			same(t, outs, tt.want)
			if got := l.Online(); !reflect.DeepEqual(got, tt.online) {
				t.Errorf("online %+v, want %+v", got, tt.online)
			}
		})
	}
}

func TestMatched(t *testing.T) {
	l := NewLobby(self)
	entered(t, l)
	l.Request("a", n(game.CmdQueue), []byte(`{"mode":"duel"}`), t0)
	m := game.Matched{MatchID: "m-1", Account: "a", Mode: "duel", Opponent: p("b", "Bo")}
	outs, err := l.FromMatch(game.NodeMatched, body(t, m))
	if err != nil {
		t.Fatal(err)
	}
	same(t, outs, []Out{{To: ToPlayer, Account: "a", Cmd: game.PushMatched, Body: m}})
	// No longer waiting: another mode is fine now.
	outs = l.Request("a", n(game.CmdQueue), []byte(`{"mode":"brawl"}`), t0)
	if outs[0].To != ToMatch || outs[0].Key != "brawl" {
		t.Errorf("queue after a match: %+v", outs)
	}

	for _, tc := range []struct {
		cmd  uint64
		body string
		want error
	}{
		{game.NodeMatched, `{"match_id":"m-2","account":"zed"}`, ErrNotHere},
		{game.NodeMatched, `{`, ErrBadMessage},
		{game.NodeEnqueue, `{}`, ErrBadMessage},
	} {
		if outs, err := l.FromMatch(tc.cmd, []byte(tc.body)); !errors.Is(err, tc.want) || outs != nil {
			t.Errorf("FromMatch(%d, %s) = %+v, %v; want %v", tc.cmd, tc.body, outs, err, tc.want)
		}
	}
}

func TestLose(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, l *Lobby)
		want   []Out
		wantOK bool
	}{
		{name: "never entered"},
		{
			name:  "alone",
			setup: entered,
			want:  []Out{lobbies(game.NodePresence, online("a", "Ann", false))}, wantOK: true,
		},
		{
			name:  "others here are told",
			setup: func(t *testing.T, l *Lobby) { entered(t, l); enter(t, l, "c", "Cid"); enter(t, l, "d", "Di") },
			want: []Out{
				lobbies(game.NodePresence, online("a", "Ann", false)),
				push(game.PushPresence, online("a", "Ann", false), "c", "d"),
			},
			wantOK: true,
		},
		{
			name: "waiting ticket withdrawn",
			setup: func(t *testing.T, l *Lobby) {
				entered(t, l)
				l.Request("a", n(game.CmdQueue), []byte(`{"mode":"duel"}`), t0)
			},
			want: []Out{
				lobbies(game.NodePresence, online("a", "Ann", false)),
				{To: ToMatch, Key: "duel", Cmd: game.NodeDequeue, Body: game.Ticket{Player: p("a", "Ann"), Mode: "duel", Lobby: self}},
			},
			wantOK: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLobby(self)
			if tt.setup != nil {
				tt.setup(t, l)
			}
			outs, ok := l.Lose("a")
			if ok != tt.wantOK {
				t.Errorf("ok %t", ok)
			}
			same(t, outs, tt.want)
			if _, _, still := l.Entered("a"); still {
				t.Error("still entered")
			}
			if outs := l.Request("a", n(game.CmdWorld), []byte(`{"text":"x"}`), t0); outs[0].Body != (game.Ack{Error: errEnterFirst}) {
				t.Errorf("after lose: %+v", outs)
			}
		})
	}
}

func TestLobbyLeft(t *testing.T) {
	l := NewLobby(self)
	entered(t, l)
	remoteOn(t, l, lobby2, "b", "Bo")
	remoteOn(t, l, lobby2, "d", "Di")
	remoteOn(t, l, lobby3, "c", "Cid")
	remoteOn(t, l, lobby2, "a", "Ann") // also here: no push for it
	same(t, l.LobbyLeft(lobby2, t0), []Out{
		push(game.PushPresence, online("b", "Bo", false), "a"),
		push(game.PushPresence, online("d", "Di", false), "a"),
	})
	if got, want := l.Online(), []game.Player{p("a", "Ann"), p("c", "Cid")}; !reflect.DeepEqual(got, want) {
		t.Errorf("online %+v, want %+v", got, want)
	}
	same(t, l.LobbyLeft(self, t0), nil)
	// A lobby that left is remembered for goneTTL, then forgotten.
	if len(l.gone) != 1 {
		t.Fatalf("gone %v", l.gone)
	}
	l.LobbyLeft(lobby3, t0.Add(goneTTL+time.Second))
	if _, ok := l.gone[lobby2]; ok || len(l.gone) != 1 {
		t.Errorf("gone %v, want only lobby3", l.gone)
	}
}

func TestValidLabel(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{"Ann", true}, {"Ann Lee", true}, {"名前", true}, {strings.Repeat("x", game.MaxName), true},
		{"", false}, {" ", false}, {"a\tb", false}, {"a\u200bb", false}, {"\xff", false},
		{strings.Repeat("x", game.MaxName+1), false},
	} {
		if got := validLabel(tc.s, game.MaxName); got != tc.want {
			t.Errorf("validLabel(%q) = %t", tc.s, got)
		}
	}
}

func TestWho(t *testing.T) {
	b, err := game.Encode(Who().Body)
	if err != nil || string(b) != "{}" || Who().To != ToLobbies || Who().Cmd != game.NodeWho {
		t.Errorf("Who = %+v, %s %v", Who(), b, err)
	}
}

// FuzzRequest: whatever a client sends, the lobby answers it exactly once
// with the cmd it sent, and everything it sends encodes.
func FuzzRequest(f *testing.F) {
	for _, s := range []struct {
		cmd  uint64
		body string
	}{
		{game.CmdEnter, `{"name":"Ann"}`}, {game.CmdWorld, `{"text":"hi"}`}, {game.CmdPrivate, `{"to":"b","text":"x"}`},
		{game.CmdOnline, ``}, {game.CmdQueue, `{"mode":"duel"}`}, {game.CmdEnter, `{"name":"\u0000"}`}, {4999, `[]`},
		{game.CmdWorld, `{"text":null}`}, {game.CmdQueue, `{"mode":1}`},
	} {
		f.Add(n(s.cmd), []byte(s.body), true)
	}
	f.Fuzz(func(t *testing.T, cmd uint64, body []byte, enterFirst bool) {
		cmd %= game.Offset
		l := NewLobby(self)
		remoteOn(t, l, lobby2, "b", "Bo")
		if enterFirst {
			enter(t, l, "a", "Ann")
		}
		outs := l.Request("a", cmd, body, t0)
		answers := 0
		for _, o := range outs {
			if o.To == ToPlayer && o.Account == "a" && o.Cmd == clientCmd(cmd) {
				answers++
			}
			if _, err := game.Encode(o.Body); err != nil {
				t.Fatalf("%+v: %v", o, err)
			}
		}
		if answers != 1 {
			t.Fatalf("cmd %d %q: %d answers in %+v", cmd, body, answers, outs)
		}
	})
}

// FuzzFromLobby: a bad message from another lobby is an error, never a
// crash, and never makes a player of this lobby disappear.
func FuzzFromLobby(f *testing.F) {
	for _, s := range []struct {
		cmd  uint64
		body string
	}{
		{game.NodePresence, `{"account":"b","name":"Bo","online":true}`}, {game.NodePresence, `{"account":"a","online":false}`},
		{2, `{"from":"b","text":"x","ts":1}`}, {game.NodeWho, `{}`}, {7, ``},
	} {
		f.Add(s.cmd, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, cmd uint64, body []byte) {
		l := NewLobby(self)
		enter(t, l, "a", "Ann")
		outs, err := l.FromLobby(lobby2, cmd, body)
		if err != nil && outs != nil {
			t.Fatalf("error %v with outs %+v", err, outs)
		}
		if _, _, ok := l.Entered("a"); !ok {
			t.Fatal("own player lost")
		}
	})
}

// The match's reply to an enqueue call: nothing while the ticket waits,
// the push when it completed a match.
func TestEnqueued(t *testing.T) {
	l := NewLobby(self)
	entered(t, l)
	l.Request("a", n(game.CmdQueue), []byte(`{"mode":"duel"}`), t0)
	if outs, err := l.Enqueued([]byte(`{}`)); err != nil || outs != nil {
		t.Fatalf("waiting: %+v, %v", outs, err)
	}
	m := game.Matched{MatchID: "m-1", Account: "a", Mode: "duel", Opponent: p("b", "Bo")}
	outs, err := l.Enqueued(body(t, game.Enqueued{Matched: &m}))
	if err != nil {
		t.Fatal(err)
	}
	same(t, outs, []Out{{To: ToPlayer, Account: "a", Cmd: game.PushMatched, Body: m}})
	if outs = l.Request("a", n(game.CmdQueue), []byte(`{"mode":"brawl"}`), t0); outs[0].To != ToMatch {
		t.Errorf("queue after a match: %+v", outs)
	}
	for _, tc := range []struct {
		body string
		want error
	}{
		{`{"matched":{"match_id":"m-2","account":"zed"}}`, ErrNotHere},
		{`{`, ErrBadMessage},
	} {
		if outs, err := l.Enqueued([]byte(tc.body)); !errors.Is(err, tc.want) || outs != nil {
			t.Errorf("Enqueued(%s) = %+v, %v; want %v", tc.body, outs, err, tc.want)
		}
	}
}
