package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/mgrserver"
)

func TestPlan(t *testing.T) {
	addrs := Addrs{MgrAdmins: []string{"127.0.0.1:1", "127.0.0.1:2"}, GatewayAdmin: "127.0.0.1:3", Login: "127.0.0.1:4"}
	plan := Plan(addrs, 2, 1, "4")
	if got := Want(plan); !reflect.DeepEqual(got, map[common.NodeType]int{common.Login: 1, common.Gateway: 1, 4: 2, 5: 1}) {
		t.Errorf("Want = %v", got)
	}
	var names []string
	for _, c := range plan {
		names = append(names, c.Name+"/"+c.Bin+" "+strings.Join(c.Args, " "))
	}
	want := []string{
		"mgr-1/mgrserver -listen 127.0.0.1:0 -admin 127.0.0.1:1",
		"mgr-2/mgrserver -listen 127.0.0.1:0 -admin 127.0.0.1:2",
		"gateway/gateway -listen 127.0.0.1:0 -intranet 127.0.0.1:0 -ws-listen 127.0.0.1:0 -admin 127.0.0.1:3",
		"login/login -listen 127.0.0.1:4 -stateful 4",
		"lobby-1/lobby ",
		"lobby-2/lobby ",
		"match/match ",
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("Plan:\n got %q\nwant %q", names, want)
	}
	roles := []Role{RoleMgrServer, RoleMgrServer, RoleGateway, RoleLogin, RoleNode, RoleNode, RoleNode}
	for i, c := range plan {
		if c.Role != roles[i] {
			t.Errorf("%s: role %d, want %d", c.Name, c.Role, roles[i])
		}
		if c.Member() != (c.Role != RoleMgrServer) {
			t.Errorf("%s: Member() = %t", c.Name, c.Member())
		}
	}
	if plan[0].Admin != "127.0.0.1:1" || plan[2].Admin != "127.0.0.1:3" || plan[3].Listen != "127.0.0.1:4" ||
		plan[4].Admin != "" || plan[2].Type != common.Gateway || plan[3].Type != common.Login || plan[6].Type != 5 {
		t.Errorf("Plan fields %+v", plan)
	}

	if names := childNames(Plan(addrs, 1, 2, "4,7")); !reflect.DeepEqual(names[4:], []string{"lobby", "match-1", "match-2"}) {
		t.Errorf("one lobby, two match nodes: %q", names[4:])
	}
	bots := Bots("http://127.0.0.1:4", 3, 10*time.Second)
	if bots.Name != "bots" || bots.Bin != "bot" || bots.Role != RoleBot || bots.Member() ||
		strings.Join(bots.Args, " ") != "-n 3 -duration 0 -login http://127.0.0.1:4 -chat-every 10s" {
		t.Errorf("Bots = %+v", bots)
	}
	if got := Want(append(plan, bots)); len(got) != 4 || got[0] != 0 {
		t.Errorf("Want counts the bots: %v", got)
	}
}

func TestCheckStateful(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // error substring; "" = valid
	}{
		{"4", ""},
		{"4,7", ""},
		{" 7 , 4 ", ""},
		{DefaultStateful(), ""},
		{"", "not a node type"},
		{"4,", "not a node type"},
		{"4,x", "not a node type"},
		{"4,3", "framework's"},
		{"4,4", "twice"},
		{"7", "lobby's type 4"},
	} {
		err := CheckStateful(tt.in)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckStateful(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestAttachRecipe(t *testing.T) {
	a := Attach{Cluster: "demo", Redis: "127.0.0.1:6379", SecretFile: "/tmp/x y.secret", Echo: "/src/bin/echo",
		Type: 7, Stateful: "4", CmdOffset: 1000}
	lines := a.Lines()
	want := `  XSERVER_SECRET=$(cat '/tmp/x y.secret') XSERVER_CLUSTER=demo XSERVER_REDIS=127.0.0.1:6379 /src/bin/echo -type 7`
	if len(lines) != 3 || lines[1] != want {
		t.Fatalf("recipe:\n%s\nwant line 2:\n%s", strings.Join(lines, "\n"), want)
	}
	if !strings.Contains(lines[0], "7000…7999") || !strings.Contains(lines[2], `DEMO_ARGS="-stateful 4,7"`) || !strings.Contains(lines[2], "default 4") {
		t.Errorf("recipe:\n%s", strings.Join(lines, "\n"))
	}
	a.SecretFile = "" // the caller's XSERVER_SECRET
	if got := a.Lines()[1]; strings.Contains(got, "SECRET") || !strings.HasPrefix(got, "  XSERVER_CLUSTER=demo ") {
		t.Errorf("recipe with the caller's secret: %s", got)
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
}

func childNames(plan []Child) []string {
	var out []string
	for _, c := range plan {
		out = append(out, c.Name)
	}
	return out
}

func TestTypeName(t *testing.T) {
	for typ, want := range map[common.NodeType]string{4: "lobby", 5: "match", common.Gateway: "gateway", 6: "type6"} {
		if got := TypeName(typ); got != want {
			t.Errorf("TypeName(%d) = %q, want %q", typ, got, want)
		}
	}
}

func TestAvailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	taken := ln.Addr().String()
	if Available(taken) {
		t.Errorf("Available(%s) while it is listened on", taken)
	}
	ln.Close()
	free, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !Available(free) {
		t.Errorf("FreeAddr %s is not available", free)
	}
}

func nodes(types ...common.NodeType) []NodeStatus {
	out := make([]NodeStatus, len(types))
	for i, t := range types {
		out[i] = NodeStatus{ID: common.NewNodeID().String(), Type: t}
	}
	return out
}

func TestSummaryAndReached(t *testing.T) {
	want := map[common.NodeType]int{4: 2, 5: 1}
	down := errors.New("connection refused")
	tests := []struct {
		name        string
		views       []View
		wantLine    string
		wantReached bool
	}{
		{"nothing up", []View{{Name: "mgr-1", Err: down}, {Name: "mgr-2", Err: down}},
			"cluster: no leader yet (mgr-1 unreachable, mgr-2 unreachable)", false},
		{"standbys only", []View{{Name: "mgr-1", Status: &Status{}}, {Name: "mgr-2", Status: &Status{}}},
			"cluster: no leader yet (standby mgr-1, standby mgr-2)", false},
		{"leader, no nodes", []View{{Name: "mgr-1", Status: &Status{Leader: true, Epoch: 1, Nodes: nodes()}}, {Name: "mgr-2", Status: &Status{}}},
			"cluster: leader mgr-1 epoch 1 (standby mgr-2), no nodes", false},
		{"one node", []View{{Name: "mgr-1", Status: &Status{Leader: true, Epoch: 1, Nodes: nodes(4)}}},
			"cluster: leader mgr-1 epoch 1, 1 node: lobby x1", false},
		{"formed", []View{{Name: "mgr-1", Status: &Status{Leader: true, Epoch: 1, Nodes: nodes(5, 4, 4)}}, {Name: "mgr-2", Status: &Status{}}},
			"cluster: leader mgr-1 epoch 1 (standby mgr-2), 3 nodes: lobby x2, match x1", true},
		{"too many", []View{{Name: "mgr-1", Status: &Status{Leader: true, Epoch: 1, Nodes: nodes(4, 4, 5, 6)}}},
			"cluster: leader mgr-1 epoch 1, 4 nodes: lobby x2, match x1, type6 x1", false},
		{"after failover", []View{{Name: "mgr-1", Err: down}, {Name: "mgr-2", Status: &Status{Leader: true, Epoch: 2, Nodes: nodes(4, 4, 5)}}},
			"cluster: leader mgr-2 epoch 2 (mgr-1 unreachable), 3 nodes: lobby x2, match x1", true},
		{"hand-over: higher epoch wins", []View{
			{Name: "mgr-1", Status: &Status{Leader: true, Epoch: 1, Nodes: nodes(4)}},
			{Name: "mgr-2", Status: &Status{Leader: true, Epoch: 2, Nodes: nodes(4, 4, 5)}}},
			"cluster: leader mgr-2 epoch 2 (mgr-1 also claims to lead), 3 nodes: lobby x2, match x1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summary(tt.views); got != tt.wantLine {
				t.Errorf("Summary:\n got %q\nwant %q", got, tt.wantLine)
			}
			if got := Reached(tt.views, want); got != tt.wantReached {
				t.Errorf("Reached = %t, want %t", got, tt.wantReached)
			}
		})
	}
	if got := DescribeWant(want); got != "lobby x2, match x1" {
		t.Errorf("DescribeWant = %q", got)
	}
	full := map[common.NodeType]int{common.Login: 1, common.Gateway: 1, 4: 2, 5: 1}
	views := []View{{Name: "mgr-1", Status: &Status{Leader: true, Epoch: 1, Nodes: nodes(4, 5, common.Gateway, 4, common.Login)}}}
	if got := Summary(views); got != "cluster: leader mgr-1 epoch 1, 5 nodes: login x1, gateway x1, lobby x2, match x1" {
		t.Errorf("Summary with the edge = %q", got)
	}
	if !Reached(views, full) || Reached(views, want) {
		t.Error("Reached ignores the gateway or the login service")
	}
	if got := DescribeWant(full); got != "login x1, gateway x1, lobby x2, match x1" {
		t.Errorf("DescribeWant = %q", got)
	}
}

// TestFetch decodes what mgrserver really serves (mgrserver.Status).
func TestFetch(t *testing.T) {
	id := common.NewNodeID()
	served := mgrserver.Status{Leader: true, Epoch: 3, Nodes: []mgrserver.NodeStatus{
		{ID: id, Type: 4, Addrs: []string{"10.0.0.1", "10.0.0.1"}, Ports: []int32{}, Overload: []uint32{}, Version: "v1"},
		{ID: common.NewNodeID(), Type: 5, Addrs: []string{}, Ports: []int32{}, Overload: []uint32{}},
	}}
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/nodes" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(served)
	}))
	defer ok.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer broken.Close()
	children := []Child{
		{Name: "mgr-1", Role: RoleMgrServer, Admin: strings.TrimPrefix(ok.URL, "http://")},
		{Name: "mgr-2", Role: RoleMgrServer, Admin: strings.TrimPrefix(broken.URL, "http://")},
		{Name: "gateway", Role: RoleGateway, Admin: strings.TrimPrefix(broken.URL, "http://")},
		{Name: "lobby-1", Role: RoleNode},
	}
	views := Fetch(context.Background(), &http.Client{Timeout: 5 * time.Second}, children)
	if len(views) != 2 {
		t.Fatalf("%d views, want 2 (only mgrservers serve /nodes)", len(views))
	}
	want := Status{Leader: true, Epoch: 3, Nodes: []NodeStatus{{ID: id.String(), Type: 4, Version: "v1"}, {ID: served.Nodes[1].ID.String(), Type: 5}}}
	if views[0].Err != nil || !reflect.DeepEqual(*views[0].Status, want) {
		t.Errorf("mgr-1 view %+v", views[0])
	}
	if views[1].Err == nil || views[1].Status != nil {
		t.Errorf("mgr-2 view %+v, want an error", views[1])
	}
	if got := Summary(views); got != "cluster: leader mgr-1 epoch 3 (mgr-2 unreachable), 2 nodes: lobby x1, match x1" {
		t.Errorf("Summary = %q", got)
	}
}

// lockedBuffer lets the test read what Output wrote.
type lockedBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestOutput(t *testing.T) {
	var buf lockedBuffer
	o := NewOutput(&buf, "demo", "echo-1")
	o.Printf("demo", "hello %d", 1)
	w := o.Writer("echo-1")
	for _, chunk := range []string{"par", "tial\r\nsecond\nthi", "rd"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	w.Flush()
	w.Flush()
	want := "demo   | hello 1\necho-1 | partial\necho-1 | second\necho-1 | third\n"
	if buf.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestOutputConcurrent: lines from several writers never interleave.
func TestOutputConcurrent(t *testing.T) {
	var buf lockedBuffer
	o := NewOutput(&buf, "a", "b")
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b"} {
		wg.Go(func() {
			w := o.Writer(name)
			for i := range 200 {
				fmt.Fprintf(w, "%s line %d\n", name, i)
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, l := range lines {
		name, rest, ok := strings.Cut(l, " | ")
		if !ok || !strings.HasPrefix(rest, name+" line ") {
			t.Fatalf("mangled line %q", l)
		}
	}
}

func sh(t *testing.T, name, script string, out *Output) *Proc {
	t.Helper()
	p, err := Start(name, "/bin/sh", []string{"-c", script}, os.Environ(), out.Writer(name))
	if err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	return p
}

func TestProc(t *testing.T) {
	var buf lockedBuffer
	out := NewOutput(&buf, "ok", "term", "stuck", "fail")

	// Exits by itself; the output is prefixed.
	p := sh(t, "ok", "echo out; echo err >&2; printf 'no newline'", out)
	<-p.Done()
	if p.Err() != nil {
		t.Fatalf("exit: %v", p.Err())
	}
	for _, want := range []string{"ok    | out\n", "ok    | err\n", "ok    | no newline\n"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
	if err := p.Stop(syscall.SIGTERM, time.Second); err != nil {
		t.Errorf("Stop after exit = %v", err)
	}

	// Exits 0 on SIGTERM within the grace period.
	term := sh(t, "term", "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done", out)
	stuck := sh(t, "stuck", "trap '' TERM; echo ready; while :; do sleep 0.05; done", out)
	waitLine(t, &buf, "term  | ready")
	waitLine(t, &buf, "stuck | ready")
	start := time.Now()
	err := StopAll([]*Proc{term, stuck}, syscall.SIGTERM, 300*time.Millisecond)
	if !errors.Is(err, ErrKilled) || !strings.Contains(err.Error(), "stuck:") || strings.Contains(err.Error(), "term:") {
		t.Errorf("StopAll = %v, want only stuck killed", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("StopAll took %v", d)
	}
	if term.Err() != nil {
		t.Errorf("term exit %v", term.Err())
	}
	if !strings.Contains(buf.String(), "term  | bye") {
		t.Errorf("no goodbye from term:\n%s", buf.String())
	}

	fail := sh(t, "fail", "exit 3", out)
	<-fail.Done()
	if fail.Err() == nil {
		t.Error("exit 3 reported as success")
	}
}

func waitLine(t *testing.T, buf *lockedBuffer, line string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), line) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", line, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
