package demo

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Proc is a running child process whose output goes to a LineWriter.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has been reaped

	mu  sync.Mutex // guards err
	err error      // the exit error, set before done is closed
}

// Start runs path with args and env, its stdout and stderr going to out
// line by line. On Linux the child gets its own process group (so a
// terminal's Ctrl-C reaches only the demo, which stops children in order)
// and is sent SIGTERM if the demo dies.
func Start(name, path string, args, env []string, out *LineWriter) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	// Do not wait forever for output from grandchildren holding the pipe.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("demo: start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		out.Flush()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error (nil for status 0); meaningful after Done.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// ErrKilled is wrapped by Stop's error when the grace period ran out.
var ErrKilled = errors.New("demo: killed after the grace period")

// Stop sends sig, waits up to grace for the process to exit, then kills
// it. It returns the exit error, wrapped with ErrKilled if it had to kill.
// Stopping a process that has exited returns its exit error.
func (p *Proc) Stop(sig os.Signal, grace time.Duration) error {
	select {
	case <-p.done:
		return p.Err()
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return p.Err()
	case <-t.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%w: %w", ErrKilled, p.Err())
}

// StopAll stops procs concurrently (see Stop) and returns every error,
// naming its process.
func StopAll(procs []*Proc, sig os.Signal, grace time.Duration) error {
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			if err := p.Stop(sig, grace); err != nil {
				errs[i] = fmt.Errorf("%s: %w", p.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
