// Command bot is a smoke and load client for the example game: it plays
// -n scripted players against a running cluster (login service, gateways,
// lobby, match) through the same public protocols as a real client.
//
// Each bot logs in at the login service (POST /login), connects to the
// gateway its ticket names over TCP and presents the login frame, enters
// the lobby (game.CmdEnter), then sends a world chat line every
// -chat-every and, with -queue, asks once for a match, while reading the
// lobby's pushes. Bots are named <prefix>-1 … <prefix>-n: two bot runs
// with the same -prefix kick each other's sessions.
//
//	bot -login http://127.0.0.1:8080 -n 100 -duration 30s
//
// Every 5 s and at the end it prints logins and enters (ok / failed),
// messages sent and received, chat lines seen, matches, errors by kind
// (with the first of each) and the round-trip latency of Enter and of
// chat acks (p50, p90, p99). The exit status is 1 if any bot failed to log
// in or to enter, 2 for bad flags. -duration 0 plays until Ctrl-C. Every
// flag can also be set as XSERVER_<FLAG>; -h lists them.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/xserver/xserver/examples/bot/internal/bot"
	"github.com/xserver/xserver/service"
)

const (
	name = "bot"
	// every is the period of the progress summary.
	every = 5 * time.Second
)

func main() {
	ctx, stop := service.SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command-line settings.
type options struct {
	cfg      bot.Config
	duration time.Duration
}

// parseFlags reads args and the environment; every error is a
// service.UsageError (or flag.ErrHelp).
func parseFlags(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := options{cfg: bot.DefaultConfig()}
	c := &o.cfg
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.LoginURL, "login", c.LoginURL, "login service base `URL` (bots POST to URL/login)")
	fs.IntVar(&c.Bots, "n", c.Bots, "number of bots")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to play (0: until Ctrl-C)")
	fs.DurationVar(&c.ChatEvery, "chat-every", c.ChatEvery, "each bot's world chat period (0: no chat)")
	fs.StringVar(&c.Password, "password", c.Password, "every bot's `password` (examples/login's demo -password)")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "account `prefix`: bots are <prefix>-1 … <prefix>-n")
	fs.BoolVar(&c.Queue, "queue", c.Queue, "queue each bot once for a match after entering")
	fs.StringVar(&c.Mode, "mode", c.Mode, "the match `mode` bots queue for")
	fs.DurationVar(&c.Ramp, "ramp", c.Ramp, "spread the bots' starts over this long (at most half of -duration)")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "limit on a login, a connect, an Enter and each ack")
	fs.DurationVar(&c.DropEvery, "drop-every", 0, "cut each bot's connection abruptly at random around every `D` (±50%), to exercise resume (0: never)")
	fs.BoolVar(&c.NoResume, "no-resume", false, "log in with client protocol version 1 (no resume)")
	fs.BoolVar(&c.WebSocket, "ws", false, "connect over WebSocket instead of TCP")
	fs.BoolVar(&c.KeepSessions, "keep-sessions", false, "at the end, leave the sessions for their resume window instead of logging out")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the drops and the backoff")
	if err := service.Parse(fs, args, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, service.Usagef("unexpected arguments %q", fs.Args())
	}
	if o.duration < 0 {
		return nil, service.Usagef("-duration %v: must not be negative", o.duration)
	}
	if o.duration > 0 && c.Ramp > o.duration/2 {
		c.Ramp = o.duration / 2
	}
	return &o, nil
}

// run is main without the process: it plays until ctx ends or -duration
// passes and returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, getenv, stdout) // -h and -version go to stdout
	if err != nil {
		return service.Exit(stderr, name, err)
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	c := o.cfg
	fmt.Fprintf(stdout, "%s: %d bots against %s, chat every %v, queue %t, for %s\n",
		name, c.Bots, c.LoginURL, c.ChatEvery, c.Queue, durationText(o.duration))

	st := bot.NewStats(c.Bots, time.Now())
	progress := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-progress:
				return
			case now := <-t.C:
				st.Snapshot(now).Format(stdout, name+" | ")
			}
		}
	}()
	err = bot.Run(ctx, c, st)
	close(progress)
	<-done
	if err != nil {
		return service.Exit(stderr, name, service.Usage(err))
	}
	s := st.Snapshot(time.Now())
	fmt.Fprintf(stdout, "%s: final summary\n", name)
	s.Format(stdout, name+" | ")
	fmt.Fprintln(stdout, s.ResumeLine())
	if s.Failed() {
		fmt.Fprintf(stderr, "%s: %d bots failed to log in, %d to enter\n", name, s.LoginFailed, s.EnterFailed)
		return service.ExitFailure
	}
	return service.ExitOK
}

func durationText(d time.Duration) string {
	if d == 0 {
		return "ever (Ctrl-C stops)"
	}
	return d.String()
}
