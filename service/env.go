package service

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrBadEnv is wrapped by the UsageError Parse returns when an
// environment variable holds a value its flag rejects.
var ErrBadEnv = errors.New("service: bad environment value")

// EnvName returns the environment variable Parse consults for a flag:
// EnvName("lease-ttl") == "XSERVER_LEASE_TTL". The flag name is
// upper-cased and every character that is not an ASCII letter or digit
// becomes "_".
func EnvName(flagName string) string { return envName(EnvPrefix, flagName) }

// envName is EnvName under any prefix; with an empty prefix it is the
// converted flag name alone.
func envName(prefix, flagName string) string {
	if prefix == "" {
		return envPart(flagName)
	}
	return envPart(prefix) + "_" + envPart(flagName)
}

// envPart upper-cases s and replaces everything but ASCII letters and
// digits with '_'.
func envPart(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// parseEnv installs a usage function on fs that lists every flag with its
// environment variable, then parses args into fs. For each flag not set on
// the command line it looks up getenv(envName(prefix, name)); a non-empty
// value is applied with fs.Set. A value the flag rejects gives an error
// wrapping ErrBadEnv and naming the variable and the flag (not the value,
// which may be a secret).
//
// On -h or -help parseEnv returns flag.ErrHelp after printing the usage, as
// fs.Parse does (with flag.ExitOnError fs exits instead, as usual). A nil
// getenv means os.Getenv. After parseEnv, fs.Visit also reports flags that
// were set from the environment.
func parseEnv(fs *flag.FlagSet, prefix string, args []string, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	fs.Usage = func() { printUsage(fs, prefix) }
	if err := fs.Parse(args); err != nil {
		return err
	}

	onCommandLine := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })

	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if firstErr != nil || onCommandLine[f.Name] || noEnv(f) {
			return
		}
		name := envName(prefix, f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			firstErr = fmt.Errorf("%w: %s: invalid value for flag -%s: %w", ErrBadEnv, name, f.Name, err)
		}
	})
	return firstErr
}

// printUsage writes to fs.Output() "Usage of <name>:" followed by every
// flag, sorted by name, with its type, usage text, environment variable
// and default. parseEnv installs it as fs.Usage.
func printUsage(fs *flag.FlagSet, prefix string) {
	w := fs.Output()
	if fs.Name() == "" {
		fmt.Fprintln(w, "Usage:")
	} else {
		fmt.Fprintf(w, "Usage of %s:\n", fs.Name())
	}
	fs.VisitAll(func(f *flag.Flag) { printFlag(w, prefix, f) })
}

func printFlag(w io.Writer, prefix string, f *flag.Flag) {
	var b strings.Builder
	fmt.Fprintf(&b, "  -%s", f.Name)
	typ, usage := flag.UnquoteUsage(f)
	if typ != "" {
		b.WriteString(" " + typ)
	}
	b.WriteString("\n    \t")
	b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
	if !noEnv(f) {
		fmt.Fprintf(&b, " (env %s", envName(prefix, f.Name))
		if f.DefValue != "" {
			if isString(f) {
				fmt.Fprintf(&b, ", default %q", f.DefValue)
			} else {
				fmt.Fprintf(&b, ", default %s", f.DefValue)
			}
		}
		b.WriteString(")")
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

// isString reports whether f holds a string, so its default is quoted.
func isString(f *flag.Flag) bool {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return false
	}
	_, ok = g.Get().(string)
	return ok
}
