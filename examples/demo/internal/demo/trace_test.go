package demo

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/service"
)

// logged returns the line a cluster process's logger (service.NewLogger, text
// format, as the demo runs them) writes for msg with fields at level.
func logged(t *testing.T, level logrus.Level, msg string, fields logrus.Fields) string {
	t.Helper()
	var b bytes.Buffer
	l, err := service.NewLogger(&b, "debug", "text")
	if err != nil {
		t.Fatal(err)
	}
	l.WithFields(fields).Log(level, msg)
	return strings.TrimSuffix(b.String(), "\n")
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want LogLine // Raw is always the line
	}{
		{"logrus", logged(t, logrus.InfoLevel, "login ok", logrus.Fields{"account": "bot-1", "gateway": "127.0.0.1:4000", "bindings": 1}),
			LogLine{Structured: true, Level: "info", Msg: "login ok", Fields: map[string]string{"account": "bot-1", "gateway": "127.0.0.1:4000", "bindings": "1"}}},
		{"quotes, escapes and empty values", logged(t, logrus.WarnLevel, `say "hi"`, logrus.Fields{"text": "a b\tc \\ \"d\"", "empty": "", "n": 2}),
			LogLine{Structured: true, Level: "warning", Msg: `say "hi"`, Fields: map[string]string{"text": "a b\tc \\ \"d\"", "empty": "", "n": "2"}}},
		{"error field", logged(t, logrus.ErrorLevel, "boom", logrus.Fields{"error": errors.New("it broke: badly")}),
			LogLine{Structured: true, Level: "error", Msg: "boom", Fields: map[string]string{"error": "it broke: badly"}}},
		{"bot output", "bot | 5.0s  bots 4: logged in 4 (failed 0)", LogLine{}},
		{"usage error", "mgrserver: -secret is required: set XSERVER_SECRET", LogLine{}},
		{"no msg", `level=info time="x" a=b`, LogLine{}},
		{"unterminated quote", `level=info msg="half`, LogLine{}},
		{"bad escape", `level=info msg="\q"`, LogLine{}},
		{"empty", "", LogLine{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Raw = tt.line
			if got := ParseLine(tt.line); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseLine(%q)\n got %+v\nwant %+v", tt.line, got, tt.want)
			}
		})
	}
}

func TestCurate(t *testing.T) {
	tests := []struct {
		name     string
		role     Role
		line     string
		wantKind string
		wantText string
	}{
		{"login", RoleLogin, logged(t, logrus.InfoLevel, "login ok", logrus.Fields{"account": "alice", "gateway": "127.0.0.1:4000"}),
			"login", "alice → gateway 127.0.0.1:4000"},
		{"login line of another child", RoleNode, logged(t, logrus.InfoLevel, "login ok", logrus.Fields{"account": "alice"}), "", ""},
		{"refused login", RoleLogin, logged(t, logrus.InfoLevel, "login rejected", logrus.Fields{"account": "alice"}), "", ""},
		{"match", RoleNode, logged(t, logrus.InfoLevel, "match m-1: bot-1 vs bot-2", logrus.Fields{"mode": "duel"}),
			"match", "m-1: bot-1 vs bot-2 (duel)"},
		{"not a match", RoleNode, logged(t, logrus.InfoLevel, "match started; looking for the mgrserver", nil), "", ""},
		{"error", RoleGateway, logged(t, logrus.ErrorLevel, "encode event", logrus.Fields{"error": "bad"}), "error", "encode event: bad"},
		{"warning", RoleGateway, logged(t, logrus.WarnLevel, "closing client connection", nil), "", ""},
		{"raw", RoleLogin, "login ok", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, text, ok := Curate(tt.role, ParseLine(tt.line))
			if kind != tt.wantKind || text != tt.wantText || ok != (tt.wantKind != "") {
				t.Errorf("Curate = %q %q %t, want %q %q", kind, text, ok, tt.wantKind, tt.wantText)
			}
		})
	}
}

// fakeClock advances a second per reading.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

func TestTrace(t *testing.T) {
	var term, log lockedBuffer
	children := []Child{{Name: "login", Role: RoleLogin}, {Name: "lobby-1", Role: RoleNode}, {Name: "mgr-1", Role: RoleMgrServer}, {Name: "bots", Role: RoleBot}}
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	tr := NewTrace(&term, NewOutput(&log, Self, "login", "lobby-1", "mgr-1", "bots"), children, clock.now)

	lobbyID := common.NewNodeID().String()
	lines := map[string][]string{
		"lobby-1": {
			"panic: not structured",
			logged(t, logrus.InfoLevel, "lobby started", logrus.Fields{"id": lobbyID}),
			logged(t, logrus.InfoLevel, "member joined", logrus.Fields{"id": common.NewNodeID().String()}),
		},
		"mgr-1": {logged(t, logrus.InfoLevel, "registered", logrus.Fields{"id": common.NewNodeID().String()})},
		"bots":  {"bot | 5.0s  bots 2: progress", "bot: final summary", "bot | 6.0s  bots 2: logged in 2", "bot |   errors: none"},
	}
	for i := range 14 {
		lines["login"] = append(lines["login"], logged(t, logrus.InfoLevel, "login ok", logrus.Fields{"account": fmt.Sprintf("p%d", i), "gateway": "gw"}))
	}
	for name, ls := range lines {
		w := tr.Writer(name)
		for _, l := range ls {
			fmt.Fprintln(w, l)
		}
	}
	tr.Event("chat", "one")
	tr.Event("chat", "two")
	tr.Event("chat", "three")
	tr.Event("join", "unlimited %d", 1)
	tr.Say("plain %s", "line")
	tr.Note("log only")

	if got := tr.Name(lobbyID); got != "lobby-1" {
		t.Errorf("Name(lobby) = %q: the first id a child logs is its own", got)
	}
	if n := len(tr.ids); n != 1 {
		t.Errorf("learnt %d IDs, want only lobby-1's (mgrservers are no members; later ids are others')", n)
	}
	out := term.String()
	for _, want := range []string{
		"login   p0 → gateway gw\n", "login   p11 → gateway gw\n", "login   … (more login lines in the log)\n",
		"bots    6.0s  bots 2: logged in 2\n", "bots    errors: none\n",
		"chat    one\n", "chat    … (more chat lines in the log)\n", "join    unlimited 1\n", "\nplain line\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal lacks %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"p12", "two", "three", "progress", "log only", "panic"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("terminal shows %q:\n%s", unwanted, out)
		}
	}
	if !strings.HasPrefix(out, "   ") || !strings.Contains(out, "s  login") {
		t.Errorf("events do not start with the time since the start:\n%s", out)
	}
	all := log.String()
	for _, want := range []string{"lobby-1 | panic: not structured\n", "login   | time=", "p13", "demo    | 03:04:", "chat    three", "log only", "bots    | bot | 5.0s  bots 2: progress"} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}

	// -verbose: no terminal of its own, everything in the log.
	var vlog lockedBuffer
	v := NewTrace(nil, NewOutput(&vlog, Self), nil, clock.now)
	v.Event("chat", "a")
	v.Event("chat", "b")
	v.Say("c")
	if got := vlog.String(); !strings.Contains(got, "chat    a") || !strings.Contains(got, "chat    b") || !strings.Contains(got, "c\n") {
		t.Errorf("verbose log:\n%s", got)
	}
}

func TestTracker(t *testing.T) {
	down := errors.New("refused")
	a, b, c := NodeStatus{ID: "aaaa-1", Type: 4}, NodeStatus{ID: "bbbb-2", Type: 5}, NodeStatus{ID: "cccc-3", Type: common.Gateway}
	lead := func(name string, epoch uint64, nodes ...NodeStatus) View {
		return View{Name: name, Status: &Status{Leader: true, Epoch: epoch, Nodes: nodes}}
	}
	standby := func(name string) View { return View{Name: name, Status: &Status{}} }
	steps := []struct {
		name  string
		views []View
		want  []string
	}{
		{"nobody up", []View{{Name: "mgr-1", Err: down}, {Name: "mgr-2", Err: down}}, nil},
		{"a leader", []View{lead("mgr-1", 1), standby("mgr-2")}, []string{"leader mgr-1 1 (standby mgr-2)"}},
		{"joins", []View{lead("mgr-1", 1, c, a), standby("mgr-2")}, []string{"join cccc-3", "join aaaa-1"}},
		{"no change", []View{lead("mgr-1", 1, c, a), standby("mgr-2")}, nil},
		{"join and leave", []View{lead("mgr-1", 1, c, b), standby("mgr-2")}, []string{"join bbbb-2", "leave aaaa-1"}},
		{"leader gone", []View{{Name: "mgr-1", Err: down}, standby("mgr-2")}, []string{"no-leader  (mgr-1 unreachable, standby mgr-2)"}},
		{"still gone", []View{{Name: "mgr-1", Err: down}, standby("mgr-2")}, nil},
		{"new leader, empty: nobody left", []View{{Name: "mgr-1", Err: down}, lead("mgr-2", 2)}, []string{"leader mgr-2 2 (mgr-1 unreachable)"}},
		{"re-registrations", []View{{Name: "mgr-1", Err: down}, lead("mgr-2", 2, b)}, []string{"rejoin bbbb-2"}},
		{"a newcomer", []View{{Name: "mgr-1", Err: down}, lead("mgr-2", 2, b, a)}, []string{"join aaaa-1"}},
		{"hand-over, same lists", []View{lead("mgr-1", 3, b, a), standby("mgr-2")}, []string{"leader mgr-1 3 (standby mgr-2)", "rejoin bbbb-2", "rejoin aaaa-1"}},
	}
	var tr Tracker
	for _, s := range steps {
		var got []string
		for _, ch := range tr.Update(s.views) {
			switch ch.Kind {
			case "leader":
				got = append(got, fmt.Sprintf("leader %s %d%s", ch.Leader, ch.Epoch, ch.Others))
			case "no-leader":
				got = append(got, "no-leader "+ch.Others)
			default:
				got = append(got, ch.Kind+" "+ch.Node.ID)
			}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
}

func TestShortID(t *testing.T) {
	if got := ShortID("3f2a1b4c-0000-4000-8000-000000000000"); got != "3f2a1b4c" {
		t.Errorf("ShortID = %q", got)
	}
	if got := ShortID("odd"); got != "odd" {
		t.Errorf("ShortID(odd) = %q", got)
	}
}
