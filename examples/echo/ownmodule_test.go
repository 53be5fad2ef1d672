package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xserver/xserver/internal/redistest"
)

// TestCopiedIntoOwnModule is what a game team does first: copy this
// example's main.go into a module of its own, outside this repository,
// build it and join a cluster. It proves that the example uses public
// packages only (Go refuses to compile an import of another module's
// internal packages) and that the result runs: the copy joins a cluster
// of a real redis-server and the mgrserver and gateway binaries, registers
// and links to the gateway.
//
// The build is offline: the module cache that built this repository has
// every dependency, and go.sum comes from the checkout.
func TestCopiedIntoOwnModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds three binaries")
	}
	goBin := goTool()
	root := checkoutRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute) // cold builds on a busy machine
	defer cancel()

	// The game's module: main.go, a go.mod that requires the framework,
	// replaced by this checkout, and the checkout's go.sum.
	mod := t.TempDir()
	copyFile(t, filepath.Join(root, "examples", "echo", "main.go"), filepath.Join(mod, "main.go"))
	copyFile(t, filepath.Join(root, "go.sum"), filepath.Join(mod, "go.sum"))
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), ownGoMod(t, root), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	offline := append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	build := func(dir string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, goBin, append([]string{"build", "-o", bin + string(filepath.Separator)}, args...)...)
		cmd.Dir, cmd.Env = dir, offline
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
		}
	}
	build(mod, ".")
	build(root, "./cmd/mgrserver", "./cmd/gateway")

	rs := redistest.Start(t)
	env := append(os.Environ(),
		"XSERVER_SECRET=own-module-test-secret", // never on a command line
		"XSERVER_REDIS="+rs.Addr(),
		"XSERVER_CLUSTER=own-module",
		"XSERVER_LOG_FORMAT=json",
	)
	start(t, filepath.Join(bin, "mgrserver"), env, "-listen", "127.0.0.1:0")
	start(t, filepath.Join(bin, "gateway"), env, "-listen", "127.0.0.1:0", "-intranet", "127.0.0.1:0")
	game := start(t, filepath.Join(bin, "mygame"), env)

	deadline := time.Now().Add(30 * time.Second)
	for _, msg := range []string{"registered with the mgrserver leader", "linked to gateway"} {
		if !game.waitMsg(msg, deadline) {
			t.Fatalf("the copied echo did not log %q in time; its log:\n%s", msg, game.output())
		}
	}
}

// TestBinariesImportPublicPackagesOnly: every command (cmd/*) and every
// example binary, tests aside, imports nothing under this repository's
// top-level internal/, so a game team can copy any of them. Helpers
// private to the examples (examples/internal/..., examples/*/internal/...)
// are the examples' own business.
func TestBinariesImportPublicPackagesOnly(t *testing.T) {
	root := checkoutRoot(t)
	const private = "github.com/xserver/xserver/internal/"
	fset := token.NewFileSet()
	checked := 0
	for _, dir := range []string{"cmd", "examples"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			checked++
			for _, imp := range f.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, private) {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s imports %s: use the public packages (service, admin, node, ...)", rel, p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d files: wrong root %s?", checked, root)
	}
}

// proc is a child process whose JSON log lines the test reads.
type proc struct {
	mu   sync.Mutex // guards msgs and out
	msgs map[string]bool
	out  bytes.Buffer
	// changed is signalled (without blocking) on every line.
	changed chan struct{}
}

// start runs bin with args and env until the test ends, then stops it with
// SIGTERM (a graceful leave) and waits for it: a failed exit fails the test.
func start(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{msgs: make(map[string]bool), changed: make(chan struct{}, 1)}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		p.read(r)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		kill := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		err := cmd.Wait()
		kill.Stop()
		w.Close()
		<-read
		if err != nil {
			t.Errorf("%s: %v\n%s", filepath.Base(bin), err, p.output())
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rec struct{ Msg string }
		_ = json.Unmarshal(sc.Bytes(), &rec)
		p.mu.Lock()
		p.out.Write(sc.Bytes())
		p.out.WriteByte('\n')
		p.msgs[rec.Msg] = true
		p.mu.Unlock()
		select {
		case p.changed <- struct{}{}:
		default:
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// waitMsg reports whether a log line with message msg arrived by deadline.
func (p *proc) waitMsg(msg string, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		p.mu.Lock()
		seen := p.msgs[msg]
		p.mu.Unlock()
		if seen {
			return true
		}
		select {
		case <-p.changed:
		case <-timer.C:
			return false
		}
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// goTool is the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkoutRoot is the directory of this repository's go.mod.
func checkoutRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if !fileExists(filepath.Join(dir, "go.mod")) {
		t.Fatalf("no go.mod in %s", dir)
	}
	return dir
}

// ownGoMod is the game module's go.mod: module example.com/mygame, the
// framework at root, and the framework's own requirements. Online, `go
// mod tidy` would add those; offline, the go command cannot look up the
// go.mod files of old dependencies (gogo/protobuf predates module graph
// pruning) that a complete requirement list makes unnecessary.
func ownGoMod(t *testing.T, root string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "module ") {
			line = "module example.com/mygame"
		}
		out.WriteString(line + "\n")
	}
	fmt.Fprintf(&out, "require github.com/xserver/xserver v0.0.0\n\nreplace github.com/xserver/xserver => %s\n", root)
	return []byte(out.String())
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
