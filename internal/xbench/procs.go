package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xserver/xserver/admin"
)

// proc is one process the benchmark started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// start runs bin with args, its output in dir/name.log. The process dies
// with the benchmark (Pdeathsig) if the benchmark is killed.
func start(dir, name, bin string, args []string, env ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks politely (SIGTERM), then kills after a grace period.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.kill()
	}
}

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cpuTime is the process's user + system CPU time so far, all threads.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after ")" are fixed.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// cpuOf sums cpuTime over procs.
func cpuOf(ps ...*proc) time.Duration {
	var t time.Duration
	for _, p := range ps {
		if d, err := cpuTime(p.pid()); err == nil {
			t += d
		}
	}
	return t
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func httpOK(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// cluster is redis-server, an mgrserver, gateways, an echo node and the
// example login service, each its own process.
type cluster struct {
	bin, dir string
	name     string
	redis    string
	login    string // base URL
	procs    []*proc
	servers  []*proc // the xserver processes whose CPU counts: mgrserver, gateways, echo
	gws      []*gateway
	echo     *proc
	echoAdm  string // echo node's admin base URL
	pprof    bool   // the servers serve /debug/pprof (admin.PprofEnv)
	window   time.Duration
	n        int // processes started, for unique log names
}

type gateway struct {
	p      *proc
	client string // TCP address
	admin  string // base URL
}

const (
	secret   = "xbench-secret"
	password = "xbench-pw"
	echoCmd  = 4001 // type 4 (the echo node) × the default cmd offset 1000 + 1
)

func (c *cluster) env() []string {
	e := []string{"XSERVER_SECRET=" + secret}
	if c.pprof {
		e = append(e, admin.PprofEnv+"=1")
	}
	return e
}

func (c *cluster) common() []string {
	return []string{"-redis", c.redis, "-cluster", c.name, "-log-level", "warn"}
}

func (c *cluster) start(name, bin string, args ...string) (*proc, error) {
	c.n++
	p, err := start(c.dir, fmt.Sprintf("%02d-%s", c.n, name), bin, args, c.env()...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// startCluster starts everything and waits until a login succeeds.
func startCluster(bin, dir string, window time.Duration, pprof bool) (*cluster, error) {
	c := &cluster{bin: bin, dir: dir, name: fmt.Sprintf("xbench-%d", os.Getpid()), window: window, pprof: pprof}
	raddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(raddr)
	rp, err := c.start("redis", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err != nil {
		return c, err
	}
	c.redis = raddr
	if err := waitFor(10*time.Second, "redis-server", func() bool {
		conn, err := net.Dial("tcp", raddr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}); err != nil {
		return c, fmt.Errorf("%w\n%s", err, rp.tail(10))
	}
	mg, err := c.start("mgrserver", filepath.Join(bin, "mgrserver"), append(c.common(), "-listen", "127.0.0.1:0")...)
	if err != nil {
		return c, err
	}
	c.servers = append(c.servers, mg)
	if _, err := c.startGateway(); err != nil {
		return c, err
	}
	adm, _ := freeAddr()
	c.echoAdm = "http://" + adm
	c.echo, err = c.start("echo", filepath.Join(bin, "echo"), append(c.common(), "-admin", adm)...)
	if err != nil {
		return c, err
	}
	c.servers = append(c.servers, c.echo)
	if err := waitFor(30*time.Second, "the echo node to register", func() bool { return httpOK("http://" + adm + "/healthz") }); err != nil {
		return c, fmt.Errorf("%w\n%s", err, c.echo.tail(10))
	}
	laddr, _ := freeAddr()
	c.login = "http://" + laddr
	lp, err := c.start("login", filepath.Join(bin, "login"), append(c.common(), "-listen", laddr, "-password", password)...)
	if err != nil {
		return c, err
	}
	if err := waitFor(30*time.Second, "the login service to issue tickets", func() bool {
		_, err := c.ticket(context.Background(), "probe")
		return err == nil
	}); err != nil {
		return c, fmt.Errorf("%w\n%s", err, lp.tail(10))
	}
	return c, nil
}

// startGateway starts one more gateway and waits until it is registered.
func (c *cluster) startGateway() (*gateway, error) {
	g := &gateway{}
	g.client, _ = freeAddr()
	adm, _ := freeAddr()
	g.admin = "http://" + adm
	args := append(c.common(), "-listen", g.client, "-intranet", "127.0.0.1:0", "-inner-ip", "127.0.0.1",
		"-admin", adm, "-resume-window", c.window.String())
	p, err := c.start("gateway", filepath.Join(c.bin, "gateway"), args...)
	if err != nil {
		return nil, err
	}
	g.p = p
	if err := waitFor(30*time.Second, "the gateway to register", func() bool { return httpOK(g.admin + "/healthz") }); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, p.tail(10))
	}
	c.gws = append(c.gws, g)
	c.servers = append(c.servers, p)
	return g, nil
}

// drop forgets a killed gateway's process for the CPU sums.
func (c *cluster) drop(g *gateway) {
	for i, p := range c.servers {
		if p == g.p {
			c.servers = append(c.servers[:i:i], c.servers[i+1:]...)
		}
	}
	for i, x := range c.gws {
		if x == g {
			c.gws = append(c.gws[:i:i], c.gws[i+1:]...)
		}
	}
}

type ticket struct {
	Account string `json:"account"`
	Gateway string `json:"gateway"`
	Token   string `json:"token"`
}

var httpc = &http.Client{Timeout: 10 * time.Second}

// ticket logs account in at the login service.
func (c *cluster) ticket(ctx context.Context, account string) (*ticket, error) {
	body, _ := json.Marshal(map[string]string{"account": account, "password": password})
	req, err := http.NewRequestWithContext(ctx, "POST", c.login+"/login", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return nil, fmt.Errorf("login %s: %s: %s", account, resp.Status, strings.TrimSpace(b.String()))
	}
	var t ticket
	if err := json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&t); err != nil {
		return nil, err
	}
	return &t, nil
}

// close stops every process, the last started first.
func (c *cluster) close() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].stop()
	}
}

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
