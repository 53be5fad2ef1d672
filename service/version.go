package service

import (
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

const (
	versionFlagName = "version"
	frameworkModule = "github.com/xserver/xserver"
)

// versionFlag is the -version flag Parse adds. It has no environment
// variable: XSERVER_VERSION=1 in a deployment must not turn every process
// into one that prints its version and exits.
type versionFlag bool

func (v *versionFlag) String() string {
	if v == nil {
		return "false"
	}
	return strconv.FormatBool(bool(*v))
}

func (v *versionFlag) Set(s string) error {
	b, err := strconv.ParseBool(s)
	*v = versionFlag(b)
	return err
}

func (v *versionFlag) IsBoolFlag() bool { return true }

// noEnv reports whether f takes no environment variable.
func noEnv(f *flag.Flag) bool {
	_, ok := f.Value.(*versionFlag)
	return ok
}

// checkVersionEnv rejects XSERVER_VERSION, which once set the version a
// node publishes: ignoring it would silently publish none.
func checkVersionEnv(getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	name := EnvName(versionFlagName)
	if getenv(name) == "" {
		return nil
	}
	return fmt.Errorf("%s is set, but -version only prints the build version and has no variable: publish a node's version with %s (-node-version) and unset %s",
		name, EnvName("node-version"), name)
}

// Version describes the running binary from the build information Go
// embeds (runtime/debug): the main module and its version, the version
// control revision and time when the build recorded them (go build does
// unless -buildvcs=false), the Go version, and for a binary built on the
// framework the framework's module version.
//
//	github.com/xserver/xserver@v1.2.0 rev 4cc3312d8a1f 2026-11-30T09:48:00Z go1.26.8
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(no build information)"
	}
	return formatVersion(info)
}

// formatVersion is Version for info; it is pure.
func formatVersion(info *debug.BuildInfo) string {
	var parts []string
	if info.Main.Path != "" {
		parts = append(parts, modVersion(&info.Main))
	} else {
		parts = append(parts, info.Path)
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified {
			rev += "+modified"
		}
		parts = append(parts, "rev "+rev)
	}
	if when != "" {
		parts = append(parts, when)
	}
	if info.GoVersion != "" {
		parts = append(parts, info.GoVersion)
	}
	if info.Main.Path != frameworkModule {
		for _, d := range info.Deps {
			if d.Path == frameworkModule {
				parts = append(parts, "framework "+modVersion(d))
			}
		}
	}
	return strings.Join(parts, " ")
}

func modVersion(m *debug.Module) string {
	s := m.Path + "@" + m.Version
	if m.Replace != nil {
		s += " => " + m.Replace.Path
		if m.Replace.Version != "" {
			s += "@" + m.Replace.Version
		}
	}
	return s
}
