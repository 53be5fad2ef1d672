// Command sessload measures what idle logged-in sessions cost a gateway
// process, as an operator sees it: redis-server, mgrserver, the login
// service and a gateway run as separate processes from -bin; N accounts
// get tickets from the login service over HTTP and log in to the gateway
// (protocol version 2, resume on) from worker processes, each holding at
// most -per sessions from its own 127.0.0.x source address. Once every
// session is in and the last login is -settle old, it reads the gateway's
// RSS from /proc (no forced GC) and the Redis commands run
// (INFO commandstats).
//
// In the same run, a bare process accepts and holds the same number of raw
// TCP connections: the baseline a gateway cannot go below.
//
// Usage: go run ./internal/sessload -bin bin -n 10000 [-ws]
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/xserver/xserver/common/wire"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "worker":
			if err := worker(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "sessload worker:", err)
				os.Exit(1)
			}
			return
		case "bare":
			if err := bare(); err != nil {
				fmt.Fprintln(os.Stderr, "sessload bare:", err)
				os.Exit(1)
			}
			return
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sessload:", err)
		os.Exit(1)
	}
}

type opts struct {
	bin     string
	n, per  int
	ws      bool
	settle  time.Duration
	window  time.Duration
	logins  int
	workdir string
}

func run() error {
	var o opts
	flag.StringVar(&o.bin, "bin", "bin", "`dir` holding the mgrserver, gateway and login binaries (make build)")
	flag.IntVar(&o.n, "n", 10000, "sessions to open")
	flag.IntVar(&o.per, "per", 9000, "sessions per worker process (each from its own 127.0.0.x)")
	flag.BoolVar(&o.ws, "ws", false, "log in over WebSocket instead of TCP")
	flag.DurationVar(&o.settle, "settle", 20*time.Second, "wait after the last login before measuring")
	flag.DurationVar(&o.window, "resume-window", 30*time.Second, "the gateway's -resume-window")
	flag.IntVar(&o.logins, "c", 64, "logins in flight at once")
	flag.Parse()
	dir, err := os.MkdirTemp("", "sessload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.workdir = dir
	var procs []*exec.Cmd
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			_ = procs[i].Process.Kill()
			_ = procs[i].Wait()
		}
	}()
	start := func(name string, args ...string) (*exec.Cmd, error) {
		f, err := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
		if err != nil {
			return nil, err
		}
		c := exec.Command(name, args...)
		c.Stdout, c.Stderr = f, f
		c.Env = append(os.Environ(), "XSERVER_SECRET=sessload")
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := c.Start(); err != nil {
			return nil, err
		}
		procs = append(procs, c)
		return c, nil
	}

	// The baseline first: a process holding n raw connections.
	bareRSS, err := measureBare(o)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	redisAddr := freeAddr()
	_, rport, _ := net.SplitHostPort(redisAddr)
	if _, err := start("redis-server", "--port", rport, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients", "1000"); err != nil {
		return err
	}
	if err := waitFor(10*time.Second, func() bool {
		c, err := net.Dial("tcp", redisAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return errors.New("redis-server did not start")
	}
	common := []string{"-redis", redisAddr, "-cluster", "sessload", "-log-level", "warn"}
	if _, err := start(filepath.Join(o.bin, "mgrserver"), append(common, "-listen", "127.0.0.1:0")...); err != nil {
		return err
	}
	client, wsAddr, admin := freeAddr(), freeAddr(), freeAddr()
	gw, err := start(filepath.Join(o.bin, "gateway"), append(common, "-listen", client, "-ws-listen", wsAddr, "-intranet", "127.0.0.1:0",
		"-inner-ip", "127.0.0.1", "-admin", admin, "-resume-window", o.window.String(),
		"-max-clients", strconv.Itoa(o.n+1000), "-max-prelogin", strconv.Itoa(o.logins*4+100))...)
	if err != nil {
		return err
	}
	loginAddr := freeAddr()
	if _, err := start(filepath.Join(o.bin, "login"), append(common, "-listen", loginAddr, "-password", "pw", "-stateful", "", "-max-conns", "1000")...); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.logins}}
	if err := waitFor(60*time.Second, func() bool { _, err := ticket(hc, loginAddr, "probe"); return err == nil }); err != nil {
		return errors.New("the login service issued no ticket within 60 s (see the logs in " + dir + ")")
	}
	time.Sleep(2 * time.Second) // let the start-up garbage settle
	rss0, err := rssKiB(gw.Process.Pid)
	if err != nil {
		return err
	}
	cmds0, err := commandstats(redisAddr)
	if err != nil {
		return err
	}

	// Tickets, then the workers log in.
	tickets := make([]string, o.n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var terr atomic.Pointer[error]
	for i := 0; i < o.logins; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= o.n {
					return
				}
				acc := fmt.Sprintf("s%d", k)
				tok, err := ticket(hc, loginAddr, acc)
				if err != nil {
					terr.Store(&err)
					return
				}
				tickets[k] = acc + " " + tok
			}
		}()
	}
	wg.Wait()
	if e := terr.Load(); e != nil {
		return fmt.Errorf("ticket: %w", *e)
	}
	cmdsTickets, _ := commandstats(redisAddr)
	target := client
	if o.ws {
		target = "ws://" + wsAddr + "/ws"
	}
	loginStart := time.Now()
	var workers []*exec.Cmd
	var outs []*bufio.Reader
	for w, i := 0, 0; i < o.n; w, i = w+1, i+o.per {
		j := min(i+o.per, o.n)
		self, _ := os.Executable()
		c := exec.Command(self, "worker", "-target", target, "-src", fmt.Sprintf("127.0.0.%d", 2+w), "-c", strconv.Itoa(max(1, o.logins/4)))
		c.Stdin = strings.NewReader(strings.Join(tickets[i:j], "\n") + "\n")
		c.Stderr = os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, err := c.StdoutPipe()
		if err != nil {
			return err
		}
		if err := c.Start(); err != nil {
			return err
		}
		procs = append(procs, c)
		workers = append(workers, c)
		outs = append(outs, bufio.NewReader(out))
	}
	for i, r := range outs {
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ok") {
			return fmt.Errorf("worker %d: %q %v", i, line, err)
		}
	}
	loginTook := time.Since(loginStart)
	cmdsLogin, _ := commandstats(redisAddr)
	time.Sleep(o.settle)
	rss1, err := rssKiB(gw.Process.Pid)
	if err != nil {
		return err
	}
	cmdsIdle, _ := commandstats(redisAddr)
	metrics, _ := get("http://" + admin + "/metrics")
	clients := metricValue(metrics, "xserver_gateway_clients")
	gor := metricValue(metrics, "go_goroutines")
	heap := metricValue(metrics, "go_memstats_heap_inuse_bytes")
	stack := metricValue(metrics, "go_memstats_stack_inuse_bytes")

	kind := "TCP"
	if o.ws {
		kind = "WebSocket"
	}
	per := float64(rss1-rss0) / float64(o.n)
	fmt.Printf("sessions: %d over %s, logged in in %v (%d worker processes)\n", o.n, kind, loginTook.Round(time.Millisecond), len(workers))
	fmt.Printf("gateway: clients %.0f, goroutines %.0f, heap in use %.1f MiB, stacks %.1f MiB\n", clients, gor, heap/(1<<20), stack/(1<<20))
	fmt.Printf("gateway RSS: %d KiB before, %d KiB %v after the last login: %.2f KiB per session\n", rss0, rss1, o.settle, per)
	fmt.Printf("bare process holding %d raw TCP connections: %.2f KiB per connection\n", o.n, bareRSS)
	fmt.Printf("ratio gateway/bare: %.2f\n", per/bareRSS)
	fmt.Printf("redis commands per ticket (login service): %.2f\n", float64(cmdsTickets-cmds0)/float64(o.n))
	fmt.Printf("redis commands per gateway login: %.2f\n", float64(cmdsLogin-cmdsTickets)/float64(o.n))
	fmt.Printf("redis commands per idle session per second: %.4f (over %v; includes the processes' own periodic work)\n",
		float64(cmdsIdle-cmdsLogin)/float64(o.n)/o.settle.Seconds(), o.settle)
	return nil
}

// measureBare starts a bare process holding n connections and returns its
// RSS growth per connection in KiB.
func measureBare(o opts) (float64, error) {
	self, _ := os.Executable()
	c := exec.Command(self, "bare")
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.Stderr = os.Stderr
	out, err := c.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := c.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	r := bufio.NewReader(out)
	addr, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	addr = strings.TrimSpace(addr)
	time.Sleep(time.Second)
	rss0, err := rssKiB(c.Process.Pid)
	if err != nil {
		return 0, err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < o.n; i++ {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(2+i/o.per))}}
		cn, err := d.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		conns = append(conns, cn)
	}
	if err := waitFor(30*time.Second, func() bool {
		l, _ := r.ReadString('\n')
		return strings.TrimSpace(l) == strconv.Itoa(o.n)
	}); err != nil {
		return 0, err
	}
	time.Sleep(o.settle)
	rss1, err := rssKiB(c.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(rss1-rss0) / float64(o.n), nil
}

// bare accepts connections and holds them, printing the count every
// thousand: the least a server holding that many connections needs.
func bare() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	var conns []net.Conn
	for n := 1; ; n++ {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if n%1000 == 0 {
			fmt.Println(n)
		}
	}
}

// worker logs in every "account token" line of stdin from address src,
// prints "ok" once all are in, and holds the sessions until killed.
func worker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	target := fs.String("target", "", "gateway TCP address or ws:// URL")
	src := fs.String("src", "127.0.0.2", "source IP")
	conc := fs.Int("c", 16, "logins in flight")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lines []string
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	var held sync.Mutex
	var keep []any
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*src)}, Timeout: 10 * time.Second}
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(lines) || failed.Load() != nil {
					return
				}
				acc, tok, _ := strings.Cut(lines[k], " ")
				c, err := loginOne(dialer, *target, acc, tok)
				if err != nil {
					err = fmt.Errorf("%s: %w", acc, err)
					failed.Store(&err)
					return
				}
				held.Lock()
				keep = append(keep, c)
				held.Unlock()
			}
		}()
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		fmt.Printf("failed %v\n", *e)
		return *e
	}
	fmt.Println("ok", len(keep))
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until killed
	select {}
}

// loginOne logs one account in with a version 2 login and waits for the
// LoginAck; the connection is then left idle.
func loginOne(d *net.Dialer, target, acc, tok string) (any, error) {
	frame := wire.AppendLoginVersion(nil, acc, tok, wire.ProtocolV2)
	if strings.HasPrefix(target, "ws://") {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		ws, _, err := websocket.Dial(ctx, target, &websocket.DialOptions{HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		if err := ws.Write(ctx, websocket.MessageBinary, frame); err != nil {
			return nil, err
		}
		_, b, err := ws.Read(ctx)
		if err != nil {
			return nil, err
		}
		if err := checkAck(b); err != nil {
			return nil, err
		}
		// Keep the socket without a reader: nothing more is read.
		return ws, nil
	}
	c, err := d.Dial("tcp", target)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(frame); err != nil {
		return nil, err
	}
	hdr := make([]byte, 256)
	if _, err := io.ReadAtLeast(c, hdr, wire.HeaderSize+2); err != nil {
		return nil, err
	}
	if err := checkAck(hdr); err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

func checkAck(b []byte) error {
	if len(b) < wire.HeaderSize+2 {
		return errors.New("short LoginAck")
	}
	if kind := wire.Kind(binary.BigEndian.Uint16(b[4:6])); kind != wire.KindClientLoginAck {
		return fmt.Errorf("got %s, not LoginAck", kind)
	}
	code, text, _ := wire.DecodeCoded(b[wire.HeaderSize:])
	if code != wire.CodeOK {
		return fmt.Errorf("login refused: %d %s", code, text)
	}
	return nil
}

func ticket(hc *http.Client, loginAddr, acc string) (string, error) {
	body := fmt.Sprintf(`{"account":%q,"password":"pw"}`, acc)
	resp, err := hc.Post("http://"+loginAddr+"/login", "application/json", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("login %s: %d %s", acc, resp.StatusCode, b)
	}
	var t struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &t); err != nil || t.Token == "" {
		return "", fmt.Errorf("login %s: no token in %s", acc, b)
	}
	return t.Token, nil
}

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS")
}

// commandstats is the total calls of every command redis-server ran.
func commandstats(addr string) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("INFO commandstats\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("INFO: %q %v", head, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n+2)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	var total int64
	for _, l := range strings.Split(string(body), "\n") {
		// cmdstat_get:calls=12,usec=...
		if !strings.HasPrefix(l, "cmdstat_") || strings.HasPrefix(l, "cmdstat_info:") {
			continue
		}
		_, rest, _ := strings.Cut(l, "calls=")
		v, _, _ := strings.Cut(rest, ",")
		k, _ := strconv.ParseInt(v, 10, 64)
		total += k
	}
	return total, nil
}

func get(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func metricValue(body, name string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(l, name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitFor(d time.Duration, cond func() bool) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out")
}
