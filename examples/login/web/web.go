package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/xserver/xserver/examples/login/internal/loginhttp"
)

// assets is the browser client and the JS SDK's browser modules (a copy
// of clients/js/dist made by make web-sdk); never modified.
//
//go:embed index.html app.js style.css sdk/*.js
var assets embed.FS

// contentSecurityPolicy allows only the page's own files, the login API
// on the same origin and WebSockets to a gateway.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Config configures the login API (see loginhttp.Config); Service is
// required.
type Config = loginhttp.Config

// Service performs logins; *login.Service satisfies it.
type Service = loginhttp.Service

// DefaultConfig returns the login API's defaults; the caller sets Service.
func DefaultConfig() Config { return loginhttp.DefaultConfig() }

// NewLoginHandler returns the whole HTTP front: the browser client
// (Handler) in front of the login API built from cfg.
func NewLoginHandler(cfg Config) (http.Handler, error) {
	api, err := loginhttp.New(cfg)
	if err != nil {
		return nil, err
	}
	return Handler(api), nil
}

// Handler serves the browser client at GET / (and HEAD): the page, /app.js,
// /style.css and the SDK's modules under /sdk/. Every other request goes
// to api.
func Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", file("index.html"))
	mux.Handle("GET /app.js", file("app.js"))
	mux.Handle("GET /style.css", file("style.css"))
	mux.Handle("GET /sdk/{name}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "sdk/" + r.PathValue("name")
		if _, err := fs.Stat(assets, name); err != nil || !strings.HasSuffix(name, ".js") {
			api.ServeHTTP(w, r)
			return
		}
		file(name)(w, r)
	}))
	mux.Handle("/", api)
	return mux
}

// file serves one embedded asset; the type comes from its extension.
func file(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		http.ServeFileFS(w, r, assets, name)
	}
}
