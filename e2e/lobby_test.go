//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/node"
)

// lobbyPkg is the example lobby. It is a command (package main) with no
// importable library part, so the test builds it and runs it as a child
// process joined to the in-process cluster; once it has one, call it here
// instead.
const lobbyPkg = "github.com/xserver/xserver/examples/lobby"

// startLobby builds and runs one lobby against Redis at redisAddr, with
// its output in artifacts/lobby.log, and returns its node ID once members
// (any node of the cluster) sees it. Cleanup stops it with SIGTERM, so it
// leaves the cluster gracefully, and waits for it.
func startLobby(ctx context.Context, t *testing.T, redisAddr, artifacts string, members *node.Node) common.NodeID {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lobby")
	build := exec.CommandContext(ctx, goTool(), "build", "-o", bin, lobbyPkg)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", lobbyPkg, err, out)
	}
	logFile, err := os.Create(filepath.Join(artifacts, "lobby.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "-cluster", clusterName, "-redis", redisAddr, "-log-level", "debug")
	cmd.Env = append(os.Environ(), "XSERVER_SECRET="+secret) // never on a command line
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stepTimeout // then SIGKILL
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start the lobby: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
	})

	var id common.NodeID
	waitFor(ctx, t, "the lobby to join the cluster", func() bool {
		for _, m := range members.GetNodeList(lobbyType) {
			id = m.GetID()
			return true
		}
		return false
	})
	return id
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
