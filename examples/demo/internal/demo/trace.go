package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/xserver/xserver/common"
)

// Trace is the demo's output. Every line a child writes goes to the log
// (an Output: the log file, plus the terminal with -verbose); a few are
// also curated into one-line events on the terminal. The demo's own
// events go to both.
//
// Trace is safe for concurrent use: children's output arrives on their
// os/exec goroutines, events from the demo's. A mutex guards what it
// learns and its terminal writes.
type Trace struct {
	start time.Time
	now   func() time.Time
	term  io.Writer       // events; nil when the log is on the terminal too
	log   *Output         // every line, prefixed with its source
	roles map[string]Role // child name → role; read-only
	limit map[string]int  // most events printed per kind (absent: no limit); read-only

	mu    sync.Mutex        // guards ids, named, shown, final and writes to term
	ids   map[string]string // node ID → child name, learnt from the children's logs
	named map[string]bool   // children whose node ID is known
	shown map[string]int    // events printed, by kind
	final map[string]bool   // bot children printing their final summary
}

// Self is the name the demo's own lines carry in the log.
const Self = "demo"

// eventLimits is how many events of a kind the terminal shows: the rest
// go to the log only.
func eventLimits() map[string]int {
	return map[string]int{"login": 12, "chat": 1, "match": 1, "resume": 1, "error": 10}
}

// NewTrace writes events to term (nil: to log only, which then must reach
// the terminal) and every line to log. children are the plan's, bots
// included.
func NewTrace(term io.Writer, log *Output, children []Child, now func() time.Time) *Trace {
	t := &Trace{
		now: now, term: term, log: log, roles: make(map[string]Role), limit: eventLimits(),
		ids: make(map[string]string), named: make(map[string]bool), shown: make(map[string]int),
		final: make(map[string]bool),
	}
	t.start = now()
	for _, c := range children {
		t.roles[c.Name] = c.Role
	}
	return t
}

// Writer returns the writer for child name's stdout and stderr.
func (t *Trace) Writer(name string) *LineWriter {
	return NewLineWriter(func(line []byte) { t.childLine(name, line) })
}

func (t *Trace) childLine(name string, raw []byte) {
	l := ParseLine(string(raw))
	t.log.Printf(name, "%s", l.Raw)
	role, known := t.roles[name]
	if !known {
		return
	}
	if l.Structured && role != RoleMgrServer && role != RoleBot {
		t.learnID(name, l.Fields["id"])
	}
	if role == RoleBot {
		if text, ok := t.botSummary(name, l.Raw); ok {
			t.Event("bots", "%s", text)
		}
		return
	}
	if kind, text, ok := Curate(role, l); ok {
		if kind == "error" {
			text = name + ": " + text
		}
		t.Event(kind, "%s", text)
	}
}

// botSummary picks the bot swarm's final summary (the lines after "bot:
// final summary", each prefixed "bot | ") out of its output.
func (t *Trace) botSummary(name, line string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if line == "bot: final summary" {
		t.final[name] = true
		return "", false
	}
	if !t.final[name] {
		return "", false
	}
	text, ok := strings.CutPrefix(line, "bot | ")
	return strings.TrimSpace(text), ok
}

// learnID records id as child name's node ID, the first time a line of
// that child carries a node ID in its "id" field (every member logs its
// own when it starts).
func (t *Trace) learnID(name, id string) {
	if id == "" {
		return
	}
	if _, err := common.ParseNodeID(id); err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.named[name] {
		t.named[name] = true
		t.ids[id] = name
	}
}

// Name returns the child that has node ID id, or "" when unknown.
func (t *Trace) Name(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ids[id]
}

// Event prints one event of a kind ("join", "login", ...): on the
// terminal with the time since the start, and in the log. Past the kind's
// limit it goes to the log only.
func (t *Trace) Event(kind, format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	t.log.Printf(Self, "%s %-7s %s", t.stamp(), kind, text)
	if t.term == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.shown[kind]
	t.shown[kind] = n + 1
	limit, limited := t.limit[kind]
	switch {
	case !limited || n < limit:
		fmt.Fprintf(t.term, "%6.1fs  %-7s %s\n", t.now().Sub(t.start).Seconds(), kind, text)
	case n == limit:
		fmt.Fprintf(t.term, "%6.1fs  %-7s … (more %s lines in the log)\n", t.now().Sub(t.start).Seconds(), kind, kind)
	}
}

// Note writes a line of the demo's own to the log only.
func (t *Trace) Note(format string, args ...any) {
	t.log.Printf(Self, "%s %s", t.stamp(), fmt.Sprintf(format, args...))
}

// Say prints a line of the demo's own (no kind, no limit): instructions,
// the final verdict.
func (t *Trace) Say(format string, args ...any) {
	text := fmt.Sprintf(format, args...)
	t.log.Printf(Self, "%s %s", t.stamp(), text)
	if t.term == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintln(t.term, text)
}

func (t *Trace) stamp() string { return t.now().Format("15:04:05.000") }

// Curate decides whether a cluster process's log line is worth an event
// on the terminal, and words it: errors, logins (the login service's
// "login ok") and matches (the match node's "match m-…: a vs b"). It is
// pure.
func Curate(role Role, l LogLine) (kind, text string, ok bool) {
	if !l.Structured {
		return "", "", false
	}
	switch l.Level {
	case "error", "fatal", "panic":
		text = l.Msg
		if e := l.Fields["error"]; e != "" {
			text += ": " + e
		}
		return "error", text, true
	}
	switch {
	case role == RoleLogin && l.Msg == "login ok":
		return "login", fmt.Sprintf("%s → gateway %s", l.Fields["account"], l.Fields["gateway"]), true
	case role == RoleNode && strings.HasPrefix(l.Msg, "match ") && strings.Contains(l.Msg, " vs "):
		text = strings.TrimPrefix(l.Msg, "match ")
		if mode := l.Fields["mode"]; mode != "" {
			text += " (" + mode + ")"
		}
		return "match", text, true
	}
	return "", "", false
}

// ShortID is the first block of a node ID ("3f2a1b4c").
func ShortID(id string) string {
	if i := strings.IndexByte(id, '-'); i > 0 {
		return id[:i]
	}
	return id
}
