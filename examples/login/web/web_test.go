package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/login"
)

// api stands for the login API: it names itself in every answer.
var api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusTeapot)
	fmt.Fprintf(w, "api %s %s", r.Method, r.URL.Path)
})

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

func TestHandlerServesThePage(t *testing.T) {
	h := Handler(api)
	tests := []struct {
		method, path string
		status       int
		ctype        string // prefix; "" for the API
		body         string // substring
	}{
		{"GET", "/", 200, "text/html", `<form id="login-form"`},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/app.js", 200, "text/javascript", "from './sdk/index.js'"},
		{"GET", "/sdk/index.js", 200, "text/javascript", "export"},
		{"GET", "/sdk/wire.js", 200, "text/javascript", "class FrameReader"},
		{"GET", "/sdk/client.js", 200, "text/javascript", "class Client"},
		{"GET", "/sdk/node.js", 418, "", "api GET /sdk/node.js"},
		{"GET", "/sdk/web.go", 418, "", "api GET /sdk/web.go"},
		{"GET", "/style.css", 200, "text/css", "#chat"},
		{"POST", "/", 418, "", "api POST /"},
		{"POST", "/login", 418, "", "api POST /login"},
		{"GET", "/healthz", 418, "", "api GET /healthz"},
		{"GET", "/index.html", 418, "", "api GET /index.html"},
		{"GET", "/web.go", 418, "", "api GET /web.go"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			w := get(t, h, tt.method, tt.path)
			if w.Code != tt.status || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("%d %q, want %d with %q", w.Code, w.Body.String(), tt.status, tt.body)
			}
			if tt.ctype == "" {
				return
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tt.ctype)
			}
			if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if w.Header().Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff")
			}
		})
	}
}

// TestAssetsAreSelfContained: the page loads nothing from elsewhere.
func TestAssetsAreSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|<script[^>]+src="[^"/]*//`)
	err := fs.WalkDir(assets, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(assets, name)
		if err != nil {
			return err
		}
		if m := external.Find(b); m != nil {
			t.Errorf("%s refers to an external resource: %q", name, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClientCommandsMatchTheGame: app.js's command table is game.go's.
func TestClientCommandsMatchTheGame(t *testing.T) {
	js, err := fs.ReadFile(assets, "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for name, cmd := range map[string]uint64{
		"ENTER": game.CmdEnter, "WORLD": game.CmdWorld, "PRIVATE": game.CmdPrivate, "ONLINE": game.CmdOnline,
		"QUEUE": game.CmdQueue, "PUSH_PRESENCE": game.PushPresence, "PUSH_WORLD": game.PushWorld,
		"PUSH_PRIVATE": game.PushPrivate, "PUSH_MATCHED": game.PushMatched,
	} {
		if want := regexp.MustCompile(fmt.Sprintf(`\b%s: %d\b`, name, cmd)); !want.Match(js) {
			t.Errorf("app.js lacks %q", want)
		}
	}
}

// fakeService issues a ticket to anyone.
type fakeService struct{}

func (fakeService) Gateway() (login.GatewayAddr, error) {
	return login.GatewayAddr{Gateway: "127.0.0.1:7400", WebSocket: "127.0.0.1:7402"}, nil
}

func (fakeService) Login(_ context.Context, account, _ string) (*login.Ticket, error) {
	return &login.Ticket{Account: account, Gateway: "127.0.0.1:7400", WebSocket: "127.0.0.1:7402", Token: "t",
		GatewayID: common.NewNodeID()}, nil
}

func TestNewLoginHandler(t *testing.T) {
	if _, err := NewLoginHandler(DefaultConfig()); err == nil {
		t.Error("NewLoginHandler without a Service succeeded")
	}
	cfg := DefaultConfig()
	cfg.Service = fakeService{}
	h, err := NewLoginHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if w := get(t, h, "GET", "/"); w.Code != 200 || !strings.Contains(w.Body.String(), `<ul id="chat"`) {
		t.Errorf("GET /: %d %.80q", w.Code, w.Body.String())
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/login", strings.NewReader(`{"account":"alice","password":"x"}`)))
	var tk login.Ticket
	if err := json.Unmarshal(w.Body.Bytes(), &tk); w.Code != 200 || err != nil || tk.WebSocket != "127.0.0.1:7402" {
		t.Errorf("POST /login: %d %s", w.Code, w.Body)
	}
	if w := get(t, h, "GET", "/nope"); w.Code != 404 || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("GET /nope: %d %s", w.Code, w.Body)
	}
}
