package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/netutil"
)

// Sentinel errors returned (wrapped) by Server methods.
var (
	// ErrStarted: Start was called on a server that is already serving.
	ErrStarted = errors.New("admin: already started")
	// ErrClosed: Start was called after Close.
	ErrClosed = errors.New("admin: closed")
	// ErrHandle: a Handle call was rejected (bad or duplicate pattern);
	// Start reports it.
	ErrHandle = errors.New("admin: bad handler registration")
)

// Limits of the admin listener: operators' scrapers and probes need few
// connections, and none may be held open for ever.
const (
	shutdownTimeout   = 5 * time.Second // Close waits this long for requests in flight
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 10 * time.Second // a whole request (GETs have no body to speak of)
	writeTimeout      = 30 * time.Second // a whole response
	idleTimeout       = 30 * time.Second // a keep-alive connection between requests
	// MaxConns is the most connections the admin server serves at once;
	// more wait in the listen backlog until one closes.
	MaxConns = 64
)

// PprofEnv names the environment variable that, set to any non-empty
// value, makes every admin server of the process also serve Go's
// profiler under /debug/pprof/ (CPU profiles of at most writeTimeout).
// It is off by default: profiles expose the process's internals.
const PprofEnv = "XSERVER_PPROF"

// Server is the admin HTTP server. Create it with New.
type Server struct {
	log      logrus.FieldLogger
	mux      *http.ServeMux
	maxConns int           // MaxConns (tests lower it)
	idle     time.Duration // idleTimeout (tests lower it)

	mu sync.Mutex // guards the fields below
	// handleErr is the first rejected Handle call, reported by Start.
	handleErr error
	srv       *http.Server  // set by Start
	done      chan struct{} // set by Start; closed when Serve has returned
	// closing is non-nil once Close was called; it is closed when that
	// first Close has finished shutting down.
	closing chan struct{}
}

// New returns a server with GET /healthz and, if reg is non-nil,
// GET /metrics for reg and the process's Go runtime and process metrics. health is called for every /healthz request and
// must be safe for concurrent use; nil means always healthy. log receives
// serve and metrics errors; nil discards them.
func New(reg *prometheus.Registry, health func() error, log logrus.FieldLogger) *Server {
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = l
	}
	if health == nil {
		health = func() error { return nil }
	}
	s := &Server{log: log, mux: http.NewServeMux(), maxConns: MaxConns, idle: idleTimeout}
	s.mux.Handle("GET /healthz", healthHandler(health))
	if os.Getenv(PprofEnv) != "" {
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	if reg != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{reg, runtimeRegistry()}, promhttp.HandlerOpts{
			ErrorLog: log,
			Registry: reg, // also export promhttp's own error counters
		}))
	}
	return s
}

func healthHandler(health func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err.Error())
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// Handle registers h for pattern (http.ServeMux syntax, e.g.
// "GET /debug/state" or "/debug/pprof/"). Call it before Start. A pattern
// the mux rejects (malformed, or conflicting with one already registered)
// is logged and makes Start fail with ErrHandle instead of panicking.
func (s *Server) Handle(pattern string, h http.Handler) {
	if err := s.handle(pattern, h); err != nil {
		s.log.WithError(err).Error("admin: handler not registered")
		s.mu.Lock()
		if s.handleErr == nil {
			s.handleErr = err
		}
		s.mu.Unlock()
	}
}

func (s *Server) handle(pattern string, h http.Handler) (err error) {
	if h == nil {
		return fmt.Errorf("%w: nil handler for %q", ErrHandle, pattern)
	}
	defer func() {
		// ServeMux.Handle panics on bad or conflicting patterns.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %q: %v", ErrHandle, pattern, r)
		}
	}()
	s.mux.Handle(pattern, h)
	return nil
}

// Start listens on addr (":0" or "127.0.0.1:0" pick a free port), serves
// in a goroutine and returns the bound address. It fails if a Handle call
// was rejected, if the server was started before, or after Close.
func (s *Server) Start(addr string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closing != nil:
		return "", ErrClosed
	case s.srv != nil:
		return "", ErrStarted
	case s.handleErr != nil:
		return "", s.handleErr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	ln = netutil.LimitListener(ln, s.maxConns)
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       s.idle,
	}
	done := make(chan struct{})
	s.srv, s.done = srv, done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("admin: serve stopped")
		}
	}()
	bound := ln.Addr().String()
	s.log.WithField("addr", bound).Info("admin: serving")
	return bound, nil
}

// Close stops accepting connections, gives requests in flight a few
// seconds to finish, then closes the rest and waits for the serve
// goroutine. It is safe to call twice, concurrently, and before Start;
// later calls wait for the first to finish and return nil.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closing != nil {
		closing := s.closing
		s.mu.Unlock()
		<-closing
		return nil
	}
	closing := make(chan struct{})
	s.closing = closing
	srv, done := s.srv, s.done
	s.mu.Unlock()
	defer close(closing)
	if srv == nil {
		return nil
	}

	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		// Requests still running: cut them off.
		err = errors.Join(fmt.Errorf("admin: graceful shutdown: %w", err), srv.Close())
	}
	<-done
	return err
}
