// Command demo runs a small xserver cluster on this machine: two
// mgrservers (one leads, one stands by) and a few echo nodes, with their
// output prefixed by name, and prints the cluster's membership whenever it
// changes. It is what `make run` starts.
//
// Redis: $REDIS_ADDR if set, else an embedded in-memory Redis (demo only).
// The children are the mgrserver and echo binaries next to this one (make
// build puts them in bin/). A random shared secret reaches them through
// XSERVER_SECRET and is never printed.
//
// Ctrl-C (or SIGTERM, or the end of -duration) stops the nodes, then the
// mgrservers, and exits. With -duration the exit status says whether the
// cluster formed: non-zero if the leader never reported every node, or if
// a child failed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/demo/internal/demo"
	"github.com/xserver/xserver/internal/cli"
	"github.com/xserver/xserver/internal/embedredis"
)

const (
	self         = "demo"
	mgrservers   = 2
	cluster      = "demo"
	pollInterval = 250 * time.Millisecond
	stopGrace    = 5 * time.Second // per phase: nodes, then mgrservers
)

func main() {
	ctx, stop := cli.SignalContext(context.Background())
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	fs := flag.NewFlagSet(self, flag.ContinueOnError)
	duration := fs.Duration("duration", 0, "run this long, then stop and report whether the cluster formed (0: until Ctrl-C)")
	nodes := fs.Int("nodes", 3, "number of echo nodes (types 4, 4, 5, 4, 4, 5, ...)")
	logLevel := fs.String("log-level", "info", "children's log `level`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return cli.Exit(os.Stderr, self, cli.Usage(err))
	}
	if *nodes < 1 || *duration < 0 || fs.NArg() > 0 {
		fs.Usage()
		return cli.ExitUsage
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	types := demo.NodeTypes(*nodes)
	names := []string{self}
	for i := range mgrservers {
		names = append(names, fmt.Sprintf("mgr-%d", i+1))
	}
	for i := range types {
		names = append(names, fmt.Sprintf("echo-%d", i+1))
	}
	out := demo.NewOutput(os.Stdout, names...)
	say := func(format string, args ...any) { out.Printf(self, format, args...) }

	ok, err := runCluster(ctx, out, say, types, *logLevel, *duration > 0)
	if err != nil {
		say("error: %v", err)
		return cli.ExitFailure
	}
	if !ok {
		return cli.ExitFailure
	}
	return cli.ExitOK
}

// runCluster runs the cluster until ctx ends. ok is false when strict and
// the cluster never formed or a child failed.
func runCluster(ctx context.Context, out *demo.Output, say func(string, ...any), types []common.NodeType, logLevel string, strict bool) (ok bool, err error) {
	binDir, err := executableDir()
	if err != nil {
		return false, err
	}
	for _, bin := range []string{"mgrserver", "echo"} {
		if _, err := os.Stat(filepath.Join(binDir, bin)); err != nil {
			return false, fmt.Errorf("%s not found next to the demo (run `make build`): %w", bin, err)
		}
	}

	redisAddr := os.Getenv("REDIS_ADDR")
	if redisAddr == "" {
		r, err := embedredis.Start("127.0.0.1:0")
		if err != nil {
			return false, err
		}
		defer r.Close()
		redisAddr = r.Addr()
		say("REDIS_ADDR is not set: started an embedded Redis (in-memory, demo only) on %s", redisAddr)
	} else {
		say("using Redis at REDIS_ADDR")
	}

	secret, err := randomSecret()
	if err != nil {
		return false, err
	}
	env := childEnv(os.Environ(), map[string]string{
		"XSERVER_SECRET":    secret,
		"XSERVER_REDIS":     redisAddr,
		"XSERVER_CLUSTER":   cluster,
		"XSERVER_LOG_LEVEL": logLevel,
	})

	var admins []string
	for range mgrservers {
		a, err := demo.FreeAddr()
		if err != nil {
			return false, err
		}
		admins = append(admins, a)
	}
	plan := demo.Plan(admins, types)
	var mgrs, echos []*demo.Proc
	defer func() {
		// Nodes first, so their graceful leaves show; then mgrservers,
		// which release the lease. Children that exited non-zero fail a
		// strict run.
		say("stopping: SIGTERM to the nodes, then to the mgrservers")
		errN := demo.StopAll(echos, syscall.SIGTERM, stopGrace)
		errM := demo.StopAll(mgrs, syscall.SIGTERM, stopGrace)
		if e := errors.Join(errN, errM); e != nil {
			say("children did not stop cleanly: %v", e)
			if strict {
				ok = false
			}
		}
		say("stopped")
	}()
	for _, c := range plan {
		p, err := demo.Start(c.Name, filepath.Join(binDir, c.Bin), c.Args, env, out)
		if err != nil {
			return false, err
		}
		if c.Admin != "" {
			mgrs = append(mgrs, p)
		} else {
			echos = append(echos, p)
		}
		say("started %s: %s %s", c.Name, c.Bin, strings.Join(c.Args, " "))
	}

	want := demo.Want(types)
	reached := watch(ctx, say, plan, append(mgrs, echos...), want)
	if !strict {
		return true, nil
	}
	if !reached {
		say("FAIL: the leader never reported the expected nodes (%s)", demo.DescribeWant(want))
		return false, nil
	}
	say("OK: the cluster formed with %s", demo.DescribeWant(want))
	return true, nil
}

// watch polls the mgrservers until ctx ends, printing the membership line
// when it changes and reporting children that exit. It returns whether a
// leader ever reported exactly want.
func watch(ctx context.Context, say func(string, ...any), plan []demo.Child, procs []*demo.Proc, want map[common.NodeType]int) bool {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	exited := make(map[*demo.Proc]bool)
	last, reached := "", false
	for {
		views := demo.Fetch(ctx, client, plan)
		if ctx.Err() != nil {
			return reached
		}
		if line := demo.Summary(views); line != last {
			say("%s", line)
			last = line
		}
		reached = reached || demo.Reached(views, want)
		for _, p := range procs {
			select {
			case <-p.Done():
				if !exited[p] {
					exited[p] = true
					say("%s exited: %v", p.Name, exitText(p.Err()))
				}
			default:
			}
		}
		select {
		case <-ctx.Done():
			return reached
		case <-tick.C:
		}
	}
}

// executableDir is the directory holding this binary (symlinks resolved),
// where make build also puts mgrserver and echo.
func executableDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("locate own executable: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return filepath.Dir(exe), nil
}

// randomSecret returns 32 random bytes, hex-encoded.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// childEnv is base without any XSERVER_ variable (so the caller's shell
// cannot change the demo's wiring), plus set.
func childEnv(base []string, set map[string]string) []string {
	var out []string
	for _, kv := range base {
		if !strings.HasPrefix(kv, cli.EnvPrefix+"_") {
			out = append(out, kv)
		}
	}
	for k, v := range set {
		out = append(out, k+"="+v)
	}
	return out
}

func exitText(err error) string {
	if err == nil {
		return "status 0"
	}
	return err.Error()
}
