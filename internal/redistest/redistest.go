package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	readyTimeout = 10 * time.Second      // Start/Restart/Resume wait this long for PING
	pollInterval = 10 * time.Millisecond // between readiness probes
	startTries   = 5                     // processes launched before giving up on a port
	logName      = "redis-server.log"
)

// errExited: the process ended before it answered PING (typically the port
// was taken between choosing and binding it).
var errExited = errors.New("redistest: redis-server exited during start-up")

// Server is one redis-server child process.
type Server struct {
	tb   testing.TB
	bin  string
	dir  string
	port int
	args []string // extra redis-server arguments (cluster mode, replicas)
	conf string   // sentinel config file: run as a sentinel

	mu sync.Mutex // guards proc and exited
	// proc is the running process, nil when stopped.
	proc *exec.Cmd
	// exited is closed once proc has been reaped by its wait goroutine.
	exited chan struct{}
}

// Start launches redis-server on a free port and waits until it answers
// PING. Stop is registered with tb.Cleanup. A missing redis-server binary
// or a server that does not come up fails the test.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return start(tb)
}

// start is Start with extra redis-server arguments.
func start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	return startWith(tb, func(*Server) {}, args...)
}

// startWith is start with a hook that completes the Server (its port is
// chosen) before each launch.
func startWith(tb testing.TB, prepare func(*Server), args ...string) *Server {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found on PATH (apt-get install redis-server): %v", err)
	}
	// TempDir first: cleanups run last-in first-out, so the directory is
	// removed only after Stop has killed the process using it.
	s := &Server{tb: tb, bin: bin, dir: tb.TempDir(), args: args}
	tb.Cleanup(s.Stop)

	var lastErr error
	for range startTries {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: pick a port: %v", err)
		}
		s.port = port
		prepare(s)
		if lastErr = s.launch(); lastErr == nil {
			return s
		}
		if !errors.Is(lastErr, errExited) {
			break
		}
	}
	tb.Fatalf("redistest: start redis-server: %v\n%s", lastErr, s.logTail())
	return nil
}

// Addr returns "127.0.0.1:port". The port stays the same across Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Stop kills the process (SIGKILL, so a paused server stops too) and waits
// for it to exit. It is safe to call twice and from any goroutine.
func (s *Server) Stop() {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.proc, s.exited = nil, nil
	s.mu.Unlock()
	if proc == nil {
		return
	}
	_ = proc.Process.Kill() // fails only if it has already exited
	<-exited
}

// Restart stops the server if it runs and starts a fresh one on the same
// port, like a real restart with persistence off: all data is lost. It
// waits until the new process answers PING.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	var err error
	for range startTries {
		if err = s.launch(); !errors.Is(err, errExited) {
			break
		}
	}
	if err != nil {
		s.tb.Fatalf("redistest: restart redis-server on %s: %v\n%s", s.Addr(), err, s.logTail())
	}
}

// Pause freezes the process with SIGSTOP: connections stay open but
// nothing is answered, as with a hung Redis. On Linux it returns once the
// kernel reports the process stopped.
func (s *Server) Pause() {
	s.tb.Helper()
	pid, err := s.signal(stopSignal())
	if err == nil {
		err = waitStopped(pid, time.Now().Add(readyTimeout))
	}
	if err != nil {
		s.tb.Fatalf("redistest: pause: %v", err)
	}
}

// Resume continues a paused process with SIGCONT and waits until it
// answers PING.
func (s *Server) Resume() {
	s.tb.Helper()
	if _, err := s.signal(contSignal()); err != nil {
		s.tb.Fatalf("redistest: resume: %v", err)
	}
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if err := waitReady(s.Addr(), exited, time.Now().Add(readyTimeout)); err != nil {
		s.tb.Fatalf("redistest: resume: %v\n%s", err, s.logTail())
	}
}

// Client returns a new go-redis client for the server, closed by
// tb.Cleanup (before the server stops, as cleanups run in reverse).
func (s *Server) Client(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{s.Addr()}})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// launch starts one process on s.port and waits for PING. On failure the
// process is gone when launch returns.
func (s *Server) launch() error {
	logf, err := os.OpenFile(filepath.Join(s.dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redistest: open log: %w", err)
	}
	argv := append([]string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
	}, s.args...)
	if s.conf != "" {
		argv = []string{s.conf, "--sentinel", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir}
	}
	cmd := exec.Command(s.bin, argv...)
	cmd.Dir = s.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close() // the child holds its own descriptor
	if err != nil {
		return fmt.Errorf("redistest: exec %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()

	if err := waitReady(s.Addr(), exited, time.Now().Add(readyTimeout)); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return err
	}
	s.mu.Lock()
	s.proc, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// signal sends sig to the running process and returns its pid.
func (s *Server) signal(sig os.Signal) (int, error) {
	if sig == nil {
		return 0, errors.New("redistest: process signals are not supported on this platform")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0, errors.New("redistest: server is not running")
	}
	return s.proc.Process.Pid, s.proc.Process.Signal(sig)
}

// logTail returns the end of the server log for failure messages.
func (s *Server) logTail() string {
	b, err := os.ReadFile(filepath.Join(s.dir, logName))
	if err != nil {
		return "(no redis-server log)"
	}
	const max = 4 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "redis-server log:\n" + string(b)
}

// waitReady probes addr with PING until it answers PONG, the process exits
// (errExited) or the deadline passes.
func waitReady(addr string, exited <-chan struct{}, deadline time.Time) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		err := ping(addr, deadline)
		if err == nil {
			return nil
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("redistest: %s did not answer PING in time: %w", addr, err)
		}
		select {
		case <-exited:
			return errExited
		case <-tick.C:
		}
	}
}

// ping sends one PING over a fresh connection.
func ping(addr string, deadline time.Time) error {
	d := net.Dialer{Deadline: deadline}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	// A single probe must not eat the whole deadline: a paused or
	// still-loading server gets re-probed.
	probe := time.Now().Add(500 * time.Millisecond)
	if probe.After(deadline) {
		probe = deadline
	}
	if err := conn.SetDeadline(probe); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}

// freePort asks the kernel for a free port on 127.0.0.1 and releases it.
// Another process may take it before redis binds; Start then retries.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
