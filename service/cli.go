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
	ExitOK      = 0 // success, -h or -version
	ExitFailure = 1 // a runtime failure (cannot listen, ...)
	ExitUsage   = 2 // bad flags, environment or configuration
)

// UsageError marks a configuration mistake the operator must fix; Exit
// maps it to ExitUsage. Its message is the wrapped error's.
type UsageError struct {
	Err error
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

// ErrVersion is returned by Parse after printing the build version for
// -version; Exit maps it to ExitOK, like flag.ErrHelp.
var ErrVersion = errors.New("service: version printed")

// Parse parses args into fs: a flag given on the command line wins over
// XSERVER_<FLAG> (see EnvName), which wins over the default. getenv nil
// means os.Getenv. fs should use flag.ContinueOnError.
//
// Parse adds -version to fs (unless fs has a flag of that name): it prints
// Version and returns ErrVersion. -h prints every flag with its variable
// and returns flag.ErrHelp. Both write to fs.Output(), which the caller
// sets to standard output: help a user asked for is not an error (the
// flag package's default output is standard error).
//
// Anything else wrong is a UsageError that Parse does not print: Exit
// reports it with a hint to run -h. XSERVER_VERSION is one: -version has
// no variable, and the version a node publishes is -node-version.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if fs.Lookup(versionFlagName) == nil {
		fs.Var(new(versionFlag), versionFlagName, "print the build version and exit")
	}
	out := fs.Output()
	fs.SetOutput(io.Discard) // the flag package prints errors with the usage: Exit reports them
	err := parseEnv(fs, EnvPrefix, args, getenv)
	fs.SetOutput(out)
	if v, ok := fs.Lookup(versionFlagName).Value.(*versionFlag); ok && bool(*v) {
		fmt.Fprintf(out, "%s %s\n", fs.Name(), Version())
		return ErrVersion
	}
	if err == nil {
		err = checkVersionEnv(getenv)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		printUsage(fs, EnvPrefix)
		return err
	default:
		return &UsageError{Err: err}
	}
}

// Exit writes err to w as "name: err" and returns the exit status for it:
// ExitOK for nil, flag.ErrHelp and ErrVersion (nothing written),
// ExitUsage for a UsageError (with a hint to run -h), ExitFailure
// otherwise.
func Exit(w io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrVersion) {
		return ExitOK
	}
	code := ExitFailure
	var ue *UsageError
	if errors.As(err, &ue) {
		code = ExitUsage
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
	if code == ExitUsage {
		fmt.Fprintf(w, "Run %s -h to list flags and their %s_ environment variables.\n", name, EnvPrefix)
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
// environment > default; parse gets stdout for -h and -version), build
// the logger (writing to stderr), serve until ctx ends, and turn the
// outcome into an exit status (see Exit).
func Run[O Logging](ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer,
	parse func(args []string, getenv func(string) string, stdout io.Writer) (O, error),
	serve func(ctx context.Context, o O, log *logrus.Logger) error) int {
	o, err := parse(args, getenv, stdout)
	if err != nil {
		return Exit(stderr, name, err)
	}
	log, err := o.Logger(stderr)
	if err != nil {
		return Exit(stderr, name, err)
	}
	return Exit(stderr, name, serve(ctx, o, log))
}
