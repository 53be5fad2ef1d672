package loginhttp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/login"
)

// Service performs logins; *login.Service satisfies it. Login may block
// and must honour ctx.
type Service interface {
	Login(ctx context.Context, account, credential string) (*login.Ticket, error)
	Gateway() (login.GatewayAddr, error)
}

// Config configures the handler. Start from DefaultConfig.
type Config struct {
	// Service performs the logins. Required.
	Service Service
	// Health reports readiness for GET /healthz; nil means always healthy.
	// It must be quick and safe for concurrent use.
	Health func() error
	// Logger receives one line per login; nil discards them.
	Logger logrus.FieldLogger
	// Timeout bounds one login (default 5 s).
	Timeout time.Duration
	// MaxBody is the largest accepted request body in bytes (default 4 KiB).
	MaxBody int64
}

// DefaultConfig returns the defaults; the caller sets Service.
func DefaultConfig() Config {
	return Config{Timeout: 5 * time.Second, MaxBody: 4 << 10}
}

// validate fills defaults and rejects a missing Service.
func (c *Config) validate() error {
	d := DefaultConfig()
	if c.Service == nil {
		return errors.New("loginhttp: config: Service is required")
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxBody <= 0 {
		c.MaxBody = d.MaxBody
	}
	if c.Health == nil {
		c.Health = func() error { return nil }
	}
	if c.Logger == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		c.Logger = l
	}
	return nil
}

// Request is the POST /login body.
type Request struct {
	Account  string `json:"account"`
	Password string `json:"password"`
}

// ErrorResponse is the body of every error response.
type ErrorResponse struct {
	Error string `json:"error"`
}

// handler serves the API; it is immutable after New.
type handler struct {
	cfg Config
	mux *http.ServeMux
}

// New validates cfg and returns the handler (see the package doc).
func New(cfg Config) (http.Handler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	h := &handler{cfg: cfg, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("OPTIONS /login", preflight)
	h.mux.HandleFunc("/login", methodNotAllowed("POST, OPTIONS"))
	h.mux.HandleFunc("GET /gateway", h.gateway)
	h.mux.HandleFunc("/gateway", methodNotAllowed("GET, HEAD"))
	h.mux.HandleFunc("GET /healthz", h.health)
	h.mux.HandleFunc("/healthz", methodNotAllowed("GET, HEAD"))
	h.mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	return h, nil
}

// ServeHTTP allows every origin, then routes.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	h.mux.ServeHTTP(w, r)
}

// preflight answers a browser's CORS preflight for POST /login with JSON.
func preflight(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

func (h *handler) health(w http.ResponseWriter, _ *http.Request) {
	if err := h.cfg.Health(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// badBody is the public message for a body that is not a Request.
const badBody = `body must be a JSON object {"account": "…", "password": "…"}`

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	log := h.cfg.Logger.WithField("remote", r.RemoteAddr)
	req, status := decodeRequest(w, r, h.cfg.MaxBody)
	if status != http.StatusOK {
		msg := badBody
		if status == http.StatusRequestEntityTooLarge {
			msg = "request body too large"
		}
		log.WithField("status", status).Info("login request refused: bad body")
		writeError(w, status, msg)
		return
	}
	log = log.WithField("account", req.Account)

	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	ticket, err := h.cfg.Service.Login(ctx, req.Account, req.Password)
	elapsed := time.Since(start)
	if err != nil {
		status, msg := Classify(err)
		entry := log.WithError(err).WithFields(logrus.Fields{"status": status, "elapsed": elapsed})
		if status >= http.StatusInternalServerError {
			if status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			entry.Warn("login failed")
		} else {
			entry.Info("login rejected")
		}
		writeError(w, status, msg)
		return
	}
	log.WithFields(logrus.Fields{
		"gateway": ticket.Gateway, "gateway_id": ticket.GatewayID.String(), "bindings": len(ticket.Bindings),
		"elapsed": elapsed,
	}).Info("login ok")
	w.Header().Set("Cache-Control", "no-store") // the body holds a token
	writeJSON(w, http.StatusOK, ticket)
}

// decodeRequest reads exactly one Request object from the body. The
// status is 200 when it did, else 400 or 413.
func decodeRequest(w http.ResponseWriter, r *http.Request, maxBody int64) (Request, int) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	var req Request
	err := dec.Decode(&req)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("trailing data")
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return Request{}, http.StatusRequestEntityTooLarge
	case err != nil:
		return Request{}, http.StatusBadRequest
	}
	return req, http.StatusOK
}

// Classify maps a Service.Login error to an HTTP status and a public
// message: the message says what the client can do, never the internal
// detail (which the caller logs). It is pure.
func Classify(err error) (status int, msg string) {
	switch {
	case err == nil:
		return http.StatusOK, ""
	case errors.Is(err, login.ErrBadAccount):
		// Describes the client's own input; holds no credential.
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, login.ErrBadCredentials):
		return http.StatusUnauthorized, "bad account or password"
	case errors.Is(err, common.ErrNoGateway):
		return http.StatusServiceUnavailable, "no gateway available; try again later"
	case errors.Is(err, login.ErrNoInstance):
		return http.StatusServiceUnavailable, "no game server available; try again later"
	case errors.Is(err, login.ErrUnavailable):
		return http.StatusServiceUnavailable, "login temporarily unavailable; try again later"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, "login timed out; try again later"
	}
	return http.StatusInternalServerError, "internal error"
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// gateway answers GET /gateway: a gateway to resume a session at.
func (h *handler) gateway(w http.ResponseWriter, _ *http.Request) {
	a, err := h.cfg.Service.Gateway()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "no gateway available")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(a)
}
