package admin

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client returns an HTTP client whose idle connections are closed at the
// end of the test (goleak would otherwise see their goroutines).
func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// start starts s on a free port and closes it when the test ends.
func start(t *testing.T, s *Server) string {
	t.Helper()
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return "http://" + addr
}

func do(t *testing.T, c *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name     string
		health   func() error
		method   string
		wantCode int
		wantBody string
	}{
		{"nil health", nil, "GET", 200, "ok\n"},
		{"healthy", func() error { return nil }, "GET", 200, "ok\n"},
		{"unhealthy", func() error { return errors.New("redis: connection refused") }, "GET", 503, "redis: connection refused\n"},
		{"head", nil, "HEAD", 200, ""},
		{"post not allowed", nil, "POST", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := start(t, New(nil, tt.health, nil))
			code, body := do(t, client(t), tt.method, base+"/healthz")
			if code != tt.wantCode {
				t.Errorf("status %d, want %d", code, tt.wantCode)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func TestHealthFollowsState(t *testing.T) {
	var mu sync.Mutex
	var state error
	s := New(nil, func() error { mu.Lock(); defer mu.Unlock(); return state }, nil)
	base, c := start(t, s), client(t)
	for _, st := range []error{nil, errors.New("draining"), nil} {
		mu.Lock()
		state = st
		mu.Unlock()
		want := 200
		if st != nil {
			want = 503
		}
		if code, _ := do(t, c, "GET", base+"/healthz"); code != want {
			t.Errorf("state %v: status %d, want %d", st, code, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	ctr := prometheus.NewCounter(prometheus.CounterOpts{Name: "xserver_test_events_total", Help: "test"})
	reg.MustRegister(ctr)
	ctr.Add(3)

	base, c := start(t, New(reg, nil, nil)), client(t)
	code, body := do(t, c, "GET", base+"/metrics")
	if code != 200 || !strings.Contains(body, "xserver_test_events_total 3") {
		t.Fatalf("GET /metrics = %d:\n%s", code, body)
	}

	// The Go runtime and process collectors come with every /metrics.
	for _, name := range []string{"go_goroutines ", "go_memstats_alloc_bytes ", "go_gc_duration_seconds", "process_resident_memory_bytes ", "process_open_fds "} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// A second server in the same process serves them too (no duplicate
	// registration).
	base2 := start(t, New(prometheus.NewRegistry(), nil, nil))
	if code, body := do(t, c, "GET", base2+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("second server's /metrics = %d:\n%s", code, body)
	}

	base = start(t, New(nil, nil, nil))
	if code, _ := do(t, c, "GET", base+"/metrics"); code != 404 {
		t.Errorf("GET /metrics without a registry = %d, want 404", code)
	}
}

func TestHandle(t *testing.T) {
	s := New(nil, nil, nil)
	s.Handle("GET /debug/state", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "state\n")
	}))
	base, c := start(t, s), client(t)
	if code, body := do(t, c, "GET", base+"/debug/state"); code != 200 || body != "state\n" {
		t.Errorf("GET /debug/state = %d %q", code, body)
	}
	if code, _ := do(t, c, "GET", base+"/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

func TestHandleRejected(t *testing.T) {
	ok := http.NotFoundHandler()
	tests := []struct {
		name    string
		pattern string
		h       http.Handler
	}{
		{"duplicate of a built-in route", "GET /healthz", ok},
		{"malformed pattern", "GET", ok},
		{"nil handler", "/x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(nil, nil, nil)
			s.Handle(tt.pattern, tt.h)
			if addr, err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrHandle) {
				t.Errorf("Start = %q, %v; want ErrHandle", addr, err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	s := New(nil, nil, nil)
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, port, _ := net.SplitHostPort(addr); port == "0" || port == "" {
		t.Fatalf("Start returned %q, want the bound port", addr)
	}
	if _, err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close #%d: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
	if _, err := s.Start("127.0.0.1:0"); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
}

func TestCloseBeforeStart(t *testing.T) {
	s := New(nil, nil, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartBadAddr(t *testing.T) {
	s := New(nil, nil, nil)
	if _, err := s.Start("127.0.0.1:-1"); err == nil {
		t.Fatal("Start accepted a bad address")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCloseLetsRequestsFinish(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	s := New(nil, nil, nil)
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done\n")
	}))
	addr, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := client(t)

	type result struct {
		code int
		body string
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get("http://" + addr + "/slow")
		if err != nil {
			t.Errorf("GET /slow: %v", err)
			got <- result{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b)}
	}()
	<-entered

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Release the handler only once shutdown has begun (the listener is
	// closed), so the request is really in flight during Close.
	waitFor(t, "listener to close", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	close(release)

	if r := <-got; r.code != 200 || r.body != "done\n" {
		t.Errorf("in-flight request got %d %q, want 200 done", r.code, r.body)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
