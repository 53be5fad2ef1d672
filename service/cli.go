package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
)

// EnvPrefix is the environment prefix of every flag: -lease-ttl is also
// read from XSERVER_LEASE_TTL.
const EnvPrefix = "XSERVER"

// Exit statuses.
const (
	ExitOK      = 0 // success, or -h
	ExitFailure = 1 // a runtime failure (cannot listen, ...)
	ExitUsage   = 2 // bad flags, environment or configuration
)

// UsageError marks a configuration mistake the operator must fix; Exit
// maps it to ExitUsage. Its message is the wrapped error's.
type UsageError struct {
	Err error
	// printed: the flag package already wrote the message and the usage.
	printed bool
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usage wraps err (nil stays nil) as a UsageError.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		return err
	}
	return &UsageError{Err: err}
}

// Usagef formats a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// Parse parses args into fs: a flag given on
// the command line wins over XSERVER_<FLAG>, which wins over the default;
// -h lists every flag with its variable. getenv nil means os.Getenv.
//
// It returns flag.ErrHelp after printing the usage for -h, and a
// UsageError for anything else wrong. fs should use flag.ContinueOnError.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	err := parseEnv(fs, EnvPrefix, args, getenv)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return err
	case errors.Is(err, ErrBadEnv):
		return &UsageError{Err: err}
	default:
		// The flag package has printed the error and the usage.
		return &UsageError{Err: err, printed: true}
	}
}

// Exit writes err to w as "name: err" (unless it was already reported)
// and returns the exit status for it: ExitOK for nil and flag.ErrHelp,
// ExitUsage for a UsageError, ExitFailure otherwise.
func Exit(w io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	code := ExitFailure
	var ue *UsageError
	if errors.As(err, &ue) {
		code = ExitUsage
		if ue.printed {
			return code
		}
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
	if code == ExitUsage {
		fmt.Fprintf(w, "Run %s -h to list flags and their XSERVER_ environment variables.\n", name)
	}
	return code
}

// SignalContext returns a context cancelled by the first SIGINT or
// SIGTERM. From then on the signals have their default effect again, so a
// second Ctrl-C kills a process stuck in its graceful shutdown. stop
// releases the signal handlers early.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	ctx, stop = signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// Logging is what Run needs of a binary's options: the logger the common
// flags describe (Common provides it).
type Logging interface {
	Logger(w io.Writer) (*logrus.Logger, error)
}

// Run is a binary's whole life after main: parse the flags (flag >
// environment > default), build the logger, serve until ctx ends, and turn
// the outcome into an exit status (see Exit).
func Run[O Logging](ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	parse func(args []string, getenv func(string) string, out io.Writer) (O, error),
	serve func(ctx context.Context, o O, log *logrus.Logger) error) int {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return Exit(stderr, name, err)
	}
	log, err := o.Logger(stderr)
	if err != nil {
		return Exit(stderr, name, err)
	}
	return Exit(stderr, name, serve(ctx, o, log))
}
