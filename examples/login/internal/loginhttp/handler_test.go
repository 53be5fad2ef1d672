package loginhttp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/testkit"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/login"
)

const (
	password = "correct horse battery staple"
	token    = "tok-0123456789abcdefghijklmnopqrstuvwxyz-XYZ"
)

// fakeService accepts password and fails in the ways login.Service does,
// chosen by the account name.
type fakeService struct {
	gw common.NodeID
}

func (f fakeService) Gateway() (login.GatewayAddr, error) {
	return login.GatewayAddr{Gateway: "127.0.0.1:7400", WebSocket: "127.0.0.1:7402", GatewayID: f.gw}, nil
}

func (f fakeService) Login(ctx context.Context, account, credential string) (*login.Ticket, error) {
	if err := login.ValidateAccount(account); err != nil {
		return nil, err
	}
	if credential != password {
		return nil, fmt.Errorf("%w: %w", login.ErrBadCredentials, errors.New("password mismatch"))
	}
	switch account {
	case "no-gateway":
		return nil, fmt.Errorf("login: %w", common.ErrNoGateway)
	case "no-instance":
		return nil, fmt.Errorf("%w of type4: %w", login.ErrNoInstance, common.ErrNoNode)
	case "redis-down":
		return nil, fmt.Errorf("%w: bind: dial tcp 10.0.0.9:6379: connection refused", login.ErrUnavailable)
	case "slow":
		<-ctx.Done()
		return nil, fmt.Errorf("%w: bind: %w", login.ErrUnavailable, ctx.Err())
	case "broken":
		return nil, errors.New("something unexpected")
	}
	return &login.Ticket{
		Account: account, Gateway: "127.0.0.1:7400", GatewayID: f.gw, Token: token,
		Bindings:  map[common.NodeType]common.NodeID{4: f.gw},
		ExpiresAt: time.Unix(1700000000, 0).UTC(),
	}, nil
}

func newHandler(t *testing.T, health func() error) (http.Handler, *testkit.SyncBuffer) {
	t.Helper()
	var logs testkit.SyncBuffer
	l := logrus.New()
	l.SetOutput(&logs)
	cfg := DefaultConfig()
	cfg.Service = fakeService{gw: common.NewNodeID()}
	cfg.Health = health
	cfg.Logger = l
	cfg.Timeout = 50 * time.Millisecond
	cfg.MaxBody = 256
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, &logs
}

func body(account, pw string) string {
	b, _ := json.Marshal(Request{Account: account, Password: pw})
	return string(b)
}

func TestLogin(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantError  string // substring of {"error"}; "" for a ticket
	}{
		{"ok", "POST", "/login", body("alice", password), 200, ""},
		{"bad password", "POST", "/login", body("alice", "guess"), 401, "bad account or password"},
		{"empty account", "POST", "/login", body("", password), 400, "bad account name: empty"},
		{"brace in account", "POST", "/login", body("a{b}", password), 400, "bad account name"},
		{"not JSON", "POST", "/login", "account=alice&password=x", 400, "JSON object"},
		{"JSON array", "POST", "/login", `["alice"]`, 400, "JSON object"},
		{"empty body", "POST", "/login", "", 400, "JSON object"},
		{"trailing data", "POST", "/login", body("alice", password) + "{}", 400, "JSON object"},
		{"too large", "POST", "/login", body(strings.Repeat("a", 300), password), 413, "too large"},
		{"no gateway", "POST", "/login", body("no-gateway", password), 503, "no gateway"},
		{"no instance", "POST", "/login", body("no-instance", password), 503, "no game server"},
		{"redis down", "POST", "/login", body("redis-down", password), 503, "temporarily unavailable"},
		{"timeout", "POST", "/login", body("slow", password), 503, "try again later"},
		{"unexpected", "POST", "/login", body("broken", password), 500, "internal error"},
		{"GET login", "GET", "/login", "", 405, "method not allowed"},
		{"unknown path", "GET", "/nope", "", 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, logs := newHandler(t, nil)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body)))
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d; body %s", w.Code, tt.wantStatus, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if o := w.Header().Get("Access-Control-Allow-Origin"); o != "*" {
				t.Errorf("Access-Control-Allow-Origin %q", o)
			}
			if tt.wantError == "" {
				var tk login.Ticket
				if err := json.Unmarshal(w.Body.Bytes(), &tk); err != nil || tk.Token != token || tk.Account != "alice" {
					t.Errorf("ticket %+v, %v", tk, err)
				}
				if w.Header().Get("Cache-Control") != "no-store" {
					t.Error("a ticket may be cached")
				}
			} else {
				var e ErrorResponse
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.wantError) {
					t.Errorf("error body %s, want it to mention %q", w.Body, tt.wantError)
				}
				if strings.Contains(w.Body.String(), "10.0.0.9") {
					t.Error("an internal detail reached the client")
				}
			}
			if (w.Code == 503) != (w.Header().Get("Retry-After") != "") {
				t.Errorf("status %d with Retry-After %q", w.Code, w.Header().Get("Retry-After"))
			}
			for _, secret := range []string{password, token} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log holds %q:\n%s", secret, logs)
				}
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	h, _ := newHandler(t, nil)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("OPTIONS", "/login", nil)
	r.Header.Set("Origin", "http://127.0.0.1:3000")
	r.Header.Set("Access-Control-Request-Method", "POST")
	r.Header.Set("Access-Control-Request-Headers", "content-type")
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNoContent {
		t.Errorf("status %d", w.Code)
	}
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "POST, OPTIONS",
		"Access-Control-Allow-Headers": "Content-Type",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestHealth(t *testing.T) {
	var mu sync.Mutex
	var healthErr error
	h, _ := newHandler(t, func() error { mu.Lock(); defer mu.Unlock(); return healthErr })
	get := func() (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
		return w.Code, w.Body.String()
	}
	if code, b := get(); code != 200 || !strings.Contains(b, `"status":"ok"`) {
		t.Errorf("healthy: %d %s", code, b)
	}
	mu.Lock()
	healthErr = errors.New("not registered with an mgrserver")
	mu.Unlock()
	if code, b := get(); code != 503 || !strings.Contains(b, `"error":"not registered with an mgrserver"`) {
		t.Errorf("unhealthy: %d %s", code, b)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/healthz", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") == "" {
		t.Errorf("POST /healthz: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 200},
		{fmt.Errorf("%w: empty", login.ErrBadAccount), 400},
		{fmt.Errorf("%w: %w", login.ErrBadCredentials, errors.New("no such user")), 401},
		{fmt.Errorf("login: %w", common.ErrNoGateway), 503},
		{fmt.Errorf("%w of type4: %w", login.ErrNoInstance, common.ErrNoNode), 503},
		{fmt.Errorf("%w: bind: %w", login.ErrUnavailable, errors.New("i/o timeout")), 503},
		{fmt.Errorf("login: check account: %w", context.DeadlineExceeded), 503},
		{fmt.Errorf("login: check account: %w", context.Canceled), 503},
		{errors.New("boom"), 500},
	}
	for _, tt := range tests {
		if got, msg := Classify(tt.err); got != tt.want || (got != 200 && msg == "") {
			t.Errorf("Classify(%v) = %d %q, want %d", tt.err, got, msg, tt.want)
		}
	}
}

func TestNewNeedsService(t *testing.T) {
	if _, err := New(DefaultConfig()); err == nil {
		t.Error("New without a Service succeeded")
	}
}

// GET /gateway names a gateway to resume a session at, without a login.
func TestGatewayForResume(t *testing.T) {
	h, _ := newHandler(t, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/gateway", nil))
	var a login.GatewayAddr
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &a) != nil || a.Gateway != "127.0.0.1:7400" || a.WebSocket == "" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/gateway", nil))
	if w.Code != 405 {
		t.Fatalf("POST /gateway: %d", w.Code)
	}
}

// TestDocumented: docs/LOGIN.md, which clients are written from, lists
// every status and public error message the API answers with.
func TestDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "LOGIN.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	errs := []error{
		login.ErrBadCredentials, common.ErrNoGateway, login.ErrNoInstance, login.ErrUnavailable,
		context.DeadlineExceeded, errors.New("anything else"),
	}
	for _, e := range errs {
		status, msg := Classify(e)
		if row := fmt.Sprintf("| %d | `%s` |", status, msg); !strings.Contains(doc, row) {
			t.Errorf("docs/LOGIN.md lacks the row starting %s", row)
		}
	}
	for _, want := range []string{
		"| 400 | ``" + badBody + "``", "| 400 | `" + login.ErrBadAccount.Error(), "| 413 | `request body too large`",
		"| 405 | `method not allowed`", `{"status":"ok"}`, "Retry-After",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/LOGIN.md lacks %s", want)
		}
	}
	// Every field of the ticket.
	tt := reflect.TypeFor[login.Ticket]()
	for i := range tt.NumField() {
		f, _, _ := strings.Cut(tt.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(doc, "| `"+f+"` |") {
			t.Errorf("docs/LOGIN.md does not describe the ticket field %q", f)
		}
	}
}
