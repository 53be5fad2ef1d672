// Command ctlbench measures a control-plane cold start from outside: it
// starts a redis-server and a mgrserver process (bin/mgrserver), waits
// until the mgrserver leads and its settle window is over, then registers
// N simulated nodes at once from this process and times until every one
// of them sees all N members.
//
// The simulated nodes are light: one goroutine each, reading frames with
// a small buffer and parsing only the protobuf fields that count members
// (no member list is built), pinging every interval from one shared
// ticker. They behave like real nodes where it matters for a storm: a node
// that gets no snapshot within 5 s of dialling, unless pongs keep coming
// (then each extends the wait by the silence window, up to 60 s), or
// hears nothing for ping_misses × ping_interval once registered, closes and
// registers again with the same ID.
//
// For each N it prints the convergence time, the false failures (members
// the mgrserver declared failed, and sessions redone, with the phase each
// gave up in), the mgrserver's CPU time (user+system from /proc) and the
// bytes it sent, the ratios to the same run's first N, and latencies per
// phase of a session (dial, Hello, first answer, snapshot, lag of the
// mgrserver's pings, and the mgrserver's own accept → Register histogram).
// -mgr-cpuprofile (with -mgr-trace) profiles the mgrserver through its
// admin port's /debug/pprof/ (admin.PprofEnv); -cpuprofile profiles the
// load generators.
//
//	go run ./internal/ctlbench -n 1000,3000,5000
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
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	xadmin "github.com/xserver/xserver/admin"
	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/internal/intranet"
	"github.com/xserver/xserver/internal/lease"
	pb "github.com/xserver/xserver/proto"
)

const secret = "ctlbench-secret"

// genProfile: the load-generator processes write their CPU profiles to
// genProfile.N<n>.child<i> (-cpuprofile).
var genProfile string

var verbose = flag.Bool("v", false, "print progress every second")

func main() {
	ns := flag.String("n", "1000,3000,5000", "comma-separated node counts, each a fresh mgrserver; ratios are to the first")
	bin := flag.String("bin", "bin", "directory holding the mgrserver binary")
	redisBin := flag.String("redis-server", "redis-server", "redis-server binary")
	limit := flag.Duration("timeout", 60*time.Second, "give up on convergence after this long")
	quiet := flag.Duration("hold", 5*time.Second, "after converging, keep the nodes connected this long and count failures")
	settle := flag.Duration("settle", 7*time.Second, "wait this long after the mgrserver leads (its settle window) before starting the nodes")
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile to `file`, and each load generator's to file.N<n>.child<i>")
	traceFile := flag.String("trace", "", "write this process's execution trace to `file`")
	mgrProfile := flag.String("mgr-cpuprofile", "", "write the mgrserver's CPU profile of each cold start to `file`.N<n> (runs it with XSERVER_PPROF=1; see -mgr-profile-for)")
	mgrTrace := flag.Bool("mgr-trace", false, "with -mgr-cpuprofile: fetch an execution trace (file.N<n>.trace) instead of the CPU profile")
	mgrProfileFor := flag.Duration("mgr-profile-for", 10*time.Second, "how long each mgrserver CPU profile lasts from the first dial")
	procs := flag.Int("procs", 4, "load-generator processes the simulated nodes are spread over")
	child := flag.Bool("child", false, "internal: run as one load-generator process")
	addr := flag.String("addr", "", "internal (-child): the mgrserver's address")
	total := flag.Int("total", 0, "internal (-child): the cluster size every node must see")
	count := flag.Int("count", 0, "internal (-child): nodes this process simulates")
	flag.Parse()
	if *child {
		if *cpuprofile != "" {
			if f, err := os.Create(*cpuprofile); err == nil {
				_ = pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
		}
		runChild(*addr, *total, *count)
		return
	}
	genProfile = *cpuprofile
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err != nil {
			fatalf("%v", err)
		}
		_ = trace.Start(f)
		defer trace.Stop()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fatalf("%v", err)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var base *result
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fatalf("bad -n entry %q", f)
		}
		prof := ""
		if *mgrProfile != "" {
			prof = fmt.Sprintf("%s.N%d", *mgrProfile, n)
			if *mgrTrace {
				prof += ".trace"
			}
		}
		r, err := runOne(n, *procs, *bin, *redisBin, *limit, *quiet, *settle, prof, *mgrProfileFor)
		if err != nil {
			pprof.StopCPUProfile()
			trace.Stop()
			fatalf("N=%d: %v", n, err)
		}
		if base == nil {
			base = r
		}
		r.print(base)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ctlbench: "+format+"\n", args...)
	os.Exit(1)
}

type result struct {
	n          int
	converged  bool
	conv       time.Duration
	reached    int // nodes that saw all members at the end
	failed     float64
	sessions   float64
	redone     int64
	cpu        time.Duration
	bytes      int64
	holdFailed float64
	why        string
	genCPU     time.Duration
	lag        time.Duration
	phases     [nPhases]hist
	mgrReg     [3]string // the mgrserver's accept → Register p50, p99, max bucket
}

func (r *result) print(base *result) {
	conv := "did not converge"
	if r.converged {
		conv = fmt.Sprintf("converged %6.2fs", r.conv.Seconds())
	}
	fmt.Printf("N=%-5d %s  nodes-complete=%d/%d  false-failures=%.0f (during hold %.0f)  sessions=%.0f redone=%d  mgr-cpu=%.2fs gen-cpu=%.2fs  mgr-sent=%.1fMB (%.0f B/node²)",
		r.n, conv, r.reached, r.n, r.failed, r.holdFailed, r.sessions, r.redone, r.cpu.Seconds(), r.genCPU.Seconds(), float64(r.bytes)/1e6, float64(r.bytes)/float64(r.n)/float64(r.n))
	if base != r && r.converged && base.converged {
		fmt.Printf("  vs N=%d: time x%.2f cpu x%.2f bytes x%.2f", base.n,
			r.conv.Seconds()/base.conv.Seconds(), r.cpu.Seconds()/base.cpu.Seconds(), float64(r.bytes)/float64(base.bytes))
	}
	fmt.Printf("  pinger-lag=%.2fs\n", r.lag.Seconds())
	fmt.Printf("       ")
	for i, h := range r.phases {
		fmt.Printf(" %s p50 %s p99 %s max %s;", phaseNames[i], h.quantile(0.5), h.quantile(0.99), h.quantile(1))
	}
	fmt.Printf(" mgrserver accept→register p50 %s p99 %s max %s", r.mgrReg[0], r.mgrReg[1], r.mgrReg[2])
	fmt.Println()
	if r.redone > 0 {
		fmt.Printf("        sessions ended by: %s\n", r.why)
	}
}

func runOne(n, procs int, bin, redisBin string, limit, hold, settle time.Duration, prof string, profFor time.Duration) (*result, error) {
	dir, err := os.MkdirTemp("", "ctlbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	rport := freePort()
	rcmd := exec.Command(redisBin, "--port", strconv.Itoa(rport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	if err := rcmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	defer func() { _ = rcmd.Process.Kill(); _ = rcmd.Wait() }()
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rport)})
	defer rdb.Close()
	if err := waitUntil(10*time.Second, func() bool { return rdb.Ping(context.Background()).Err() == nil }); err != nil {
		return nil, errors.New("redis-server did not answer")
	}

	admin := fmt.Sprintf("127.0.0.1:%d", freePort())
	logf, err := os.Create(filepath.Join(dir, "mgrserver.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"-listen", "127.0.0.1:0", "-admin", admin,
		"-redis", fmt.Sprintf("127.0.0.1:%d", rport), "-secret", secret, "-log-level", "warn"}
	mcmd := exec.Command(filepath.Join(bin, "mgrserver"), args...)
	if prof != "" {
		mcmd.Env = append(os.Environ(), xadmin.PprofEnv+"=1")
	}
	mcmd.Stdout, mcmd.Stderr = logf, logf
	if err := mcmd.Start(); err != nil {
		return nil, fmt.Errorf("mgrserver: %w", err)
	}
	defer func() {
		_ = mcmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = mcmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = mcmd.Process.Kill()
			<-done
		}
	}()
	var rec lease.Record
	if err := waitUntil(15*time.Second, func() bool {
		rec, err = lease.Read(context.Background(), rdb, "xserver")
		return err == nil
	}); err != nil {
		return nil, errors.New("mgrserver did not take the lease")
	}
	time.Sleep(settle) // the settle window: snapshots become complete

	pid := mcmd.Process.Pid
	cpu0, self0 := cpuTime(pid), cpuTime(os.Getpid())
	start := time.Now()
	if prof != "" {
		done := profile(admin, prof, profFor)
		defer func() { <-done }()
	}
	g, err := startProcs(n, procs, rec.Addr)
	if err != nil {
		return nil, err
	}
	defer g.close()
	r := &result{n: n}
	last := time.Now()
	err = waitUntil(limit, func() bool {
		if *verbose && time.Since(last) >= time.Second {
			last = time.Now()
			st := g.status()
			fmt.Fprintf(os.Stderr, "  %5.1fs connected=%d complete=%d redone=%d received=%.0fMB\n",
				time.Since(start).Seconds(), st.Connected, st.Complete, st.Redone, float64(st.Bytes)/1e6)
		}
		return g.status().Complete == int64(n)
	})
	if err == nil {
		r.converged, r.conv = true, time.Since(start)
	}
	r.cpu = cpuTime(pid) - cpu0
	r.genCPU = cpuTime(os.Getpid()) - self0 + g.cpu()
	r.bytes = g.status().Bytes
	m0 := scrape(admin)
	time.Sleep(hold)
	m1 := scrape(admin)
	st := g.status()
	r.reached = int(st.Complete)
	r.failed = m1[`xserver_mgr_leaves_total{reason="failed"}`]
	r.holdFailed = r.failed - m0[`xserver_mgr_leaves_total{reason="failed"}`]
	r.sessions = m1["xserver_mgr_registrations_total"]
	r.redone = st.Redone
	r.lag = time.Duration(st.Lag)
	r.why = fmt.Sprint(st.Why)
	r.phases = st.Phases
	for i, q := range []float64{0.5, 0.99, 1} {
		r.mgrReg[i] = histQuantile(m1, "xserver_mgr_register_seconds", q)
	}
	return r, nil
}

// profile fetches the mgrserver's CPU profile for d into file, in the
// background; the channel is closed when it is written.
func profile(admin, file string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		kind := "profile"
		if strings.HasSuffix(file, ".trace") {
			kind = "trace"
		}
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", admin, kind, max(1, int(d.Seconds()))))
		if err != nil {
			fmt.Fprintf(os.Stderr, "ctlbench: mgrserver profile: %v\n", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil || resp.StatusCode != http.StatusOK {
			fmt.Fprintf(os.Stderr, "ctlbench: mgrserver profile: %v (HTTP %d)\n", err, resp.StatusCode)
		}
	}()
	return done
}

// phases a session goes through, timed for the report: dial (connect
// returned), hello (from connected to the Hello), answer (from Register
// written to the first frame back: a pong or the snapshot) and snapshot
// (from Register written to the snapshot); ping-lag is how late the
// mgrserver's pings are read (the ping carries its send time): the time
// they spend in the mgrserver's queue and in this node's socket until it
// reads them, which includes the load generator's own scheduling delay.
const (
	phDial = iota
	phHello
	phAnswer
	phSnapshot
	phPingLag
	nPhases
)

var phaseNames = [nPhases]string{"dial", "hello", "answer", "snapshot", "ping-lag"}

// nBuckets: bucket i counts durations below 10 ms × 2^i; the last counts
// the rest.
const nBuckets = 13

type hist [nBuckets]int64

func bucket(d time.Duration) int {
	for i := range nBuckets - 1 {
		if d < (10*time.Millisecond)<<i {
			return i
		}
	}
	return nBuckets - 1
}

// quantile is the upper bound of the bucket holding quantile q ("≥ 20s"
// for the last).
func (h *hist) quantile(q float64) string {
	var n int64
	for _, c := range h {
		n += c
	}
	if n == 0 {
		return "-"
	}
	want, acc := int64(q*float64(n)+0.5), int64(0)
	want = max(want, 1)
	for i, c := range h {
		acc += c
		if acc >= want {
			if i == nBuckets-1 {
				return fmt.Sprintf(">%s", (10*time.Millisecond)<<(nBuckets-2))
			}
			return fmt.Sprintf("<%s", (10*time.Millisecond)<<i)
		}
	}
	return "-"
}

// gen is the simulated nodes.
type gen struct {
	n        int // nodes simulated here
	total    int // members each must see
	addr     string
	complete atomic.Int64 // nodes whose view holds all n members
	bytes    atomic.Int64 // bytes received from the mgrserver
	redone   atomic.Int64 // sessions started again after one failed
	whyMu    sync.Mutex
	why      map[string]int // why sessions ended, before close
	lag      atomic.Int64   // longest gap between two pinger rounds (50 ms planned)
	phases   [nPhases][nBuckets]atomic.Int64
	stop     chan struct{}
	wg       sync.WaitGroup

	sims      []*sim       // fixed at start: no lock between the nodes and the pinger
	connected atomic.Int64 // registered sessions
}

// sim is one simulated node.
type sim struct {
	g      *gen
	id     common.NodeID
	conn   atomic.Pointer[net.Conn] // the registered session, pinged by the pinger
	pinged time.Time                // last ping (pinger only)
	full   bool                     // counted in g.complete
}

func (g *gen) start() {
	g.why = map[string]int{}
	g.sims = make([]*sim, g.n)
	for i := range g.sims { // pings spread over the second
		g.sims[i] = &sim{g: g, id: common.NewNodeID(), pinged: time.Now().Add(time.Duration(i%20) * 50 * time.Millisecond)}
	}
	for _, s := range g.sims {
		g.wg.Add(1)
		go s.run()
	}
	g.wg.Add(1)
	go g.pinger()
}

func (g *gen) close() {
	close(g.stop)
	for _, s := range g.sims {
		if c := s.conn.Load(); c != nil {
			_ = (*c).Close()
		}
	}
	g.wg.Wait()
}

// pinger pings each registered node's connection once a second. It
// wakes every 50 ms and pings the nodes due, so a late wake-up delays
// pings but never skips a node.
func (g *gen) pinger() {
	defer g.wg.Done()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var due []net.Conn
	prev := time.Now()
	for {
		select {
		case <-t.C:
		case <-g.stop:
			return
		}
		now := time.Now()
		if lag := now.Sub(prev); lag > time.Duration(g.lag.Load()) {
			g.lag.Store(int64(lag))
		}
		prev = now
		due = due[:0]
		for _, s := range g.sims {
			if c := s.conn.Load(); c != nil && now.Sub(s.pinged) >= time.Second {
				s.pinged = now
				due = append(due, *c)
			}
		}
		ping, _ := wire.Frame(wire.KindPing, &pb.Ping{UnixNano: now.UnixNano()})
		for _, c := range due {
			_ = c.SetWriteDeadline(now.Add(time.Second))
			_, _ = c.Write(ping)
		}
	}
}

func (g *gen) observe(phase int, d time.Duration) { g.phases[phase][bucket(d)].Add(1) }

func (s *sim) setFull(full bool) {
	if full != s.full {
		s.full = full
		if full {
			s.g.complete.Add(1)
		} else {
			s.g.complete.Add(-1)
		}
	}
}

func (s *sim) stopped() bool {
	select {
	case <-s.g.stop:
		return true
	default:
		return false
	}
}

func (s *sim) run() {
	defer s.g.wg.Done()
	for first := true; !s.stopped(); first = false {
		if !first {
			s.g.redone.Add(1)
			time.Sleep(time.Duration(10+rand.IntN(20)) * time.Millisecond)
		}
		if err := s.session(); err != nil && !s.stopped() {
			s.g.whyMu.Lock()
			s.g.why[reason(err)]++
			s.g.whyMu.Unlock()
		}
	}
}

var payloads = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// session holds one connection until it fails, like a real node: 5 s from
// dialling to the snapshot, then any frame within the silence window.
func (s *sim) session() error {
	g := s.g
	t0 := time.Now()
	c, err := net.DialTimeout("tcp", g.addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	t1 := time.Now()
	g.observe(phDial, t1.Sub(t0))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := &frameReader{r: bufio.NewReaderSize(intranet.Rechecked(c), 16<<10)}
	defer r.release()
	kind, p, err := r.read()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return errors.New("timeout (waiting for the hello)")
		}
		return err
	}
	g.observe(phHello, time.Since(t1))
	var hello pb.Hello
	if kind == wire.KindError {
		var e pb.Error
		_ = e.Unmarshal(p)
		return fmt.Errorf("error frame %d instead of hello", e.Code)
	}
	if kind != wire.KindHello || hello.Unmarshal(p) != nil {
		return fmt.Errorf("no hello (%s frame)", kind)
	}
	reg, _ := wire.Frame(wire.KindRegister, &pb.Register{
		Mac:             intranet.MAC(secret, hello.Nonce, s.id.Bytes()),
		Info:            &pb.NodeInfo{Id: s.id.Bytes(), Type: uint32(common.FirstGameType), Addrs: []string{"127.0.0.1", "127.0.0.1"}},
		EarlyHeartbeats: true,
	})
	if _, err := c.Write(reg); err != nil {
		return err
	}
	t2 := time.Now()
	answered := false
	s.conn.Store(&c)
	g.connected.Add(1)
	defer func() {
		s.conn.Store(nil)
		g.connected.Add(-1)
		s.setFull(false)
	}()
	silence := time.Duration(hello.PingMisses) * time.Duration(hello.PingIntervalMs) * time.Millisecond
	dl := intranet.NewLazyDeadline(c, silence)
	ceiling := time.Now().Add(60 * time.Second) // as node's snapshotCeiling

	var members int
	var seq uint64
	synced := false
	last := time.Now()
	for {
		kind, p, err := r.read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				phase := "waiting for the first answer"
				switch {
				case synced:
					phase = "registered"
				case answered:
					phase = "waiting for the snapshot"
				}
				return fmt.Errorf("timeout (%s; %s since the last frame)", phase, time.Since(last).Round(time.Second))
			}
			return err
		}
		last = time.Now()
		g.bytes.Add(int64(wire.HeaderSize + len(p)))
		if !answered {
			answered = true
			g.observe(phAnswer, time.Since(t2))
		}
		switch kind {
		case wire.KindSnapshot:
			if !synced {
				g.observe(phSnapshot, time.Since(t2))
			}
			sn := parseSnapshot(p)
			members, seq, synced = sn.nodes, sn.seq, true
		case wire.KindMemberEvent:
			if !synced {
				continue
			}
			e := parseEvent(p)
			if e.seq <= seq {
				continue
			}
			seq = e.seq
			switch e.kind {
			case int(pb.MemberEvent_JOIN):
				members++
			case int(pb.MemberEvent_LEAVE):
				members--
			}
		case wire.KindPing, wire.KindPong:
			if kind == wire.KindPing {
				var m pb.Ping
				if m.Unmarshal(p) == nil {
					g.observe(phPingLag, time.Since(time.Unix(0, m.UnixNano)))
				}
			}
			if !synced { // the registration is making progress
				d := time.Now().Add(silence)
				if d.After(ceiling) {
					d = ceiling
				}
				_ = c.SetReadDeadline(d)
			}
		case wire.KindError:
			var e pb.Error
			_ = e.Unmarshal(p)
			return fmt.Errorf("error frame %d", e.Code)
		}
		if synced && r.arm == nil {
			r.arm = dl.Arm
		}
		s.setFull(synced && members == g.total)
	}
}

// frameReader reads frames without copying those that fit its buffer;
// bigger ones (snapshots) go into a pooled buffer, so a node holds no
// snapshot-sized memory between frames. A payload is valid until the next
// read.
type frameReader struct {
	r       *bufio.Reader
	arm     func()  // if set, called before a read that has to wait for the socket
	discard int     // bytes of the last frame still in r
	big     *[]byte // pooled buffer holding the last frame
}

func (f *frameReader) release() {
	if f.discard > 0 {
		_, _ = f.r.Discard(f.discard)
		f.discard = 0
	}
	if f.big != nil {
		payloads.Put(f.big)
		f.big = nil
	}
}

// wait arms the read deadline when the next n bytes are not all buffered
// yet: only a read that waits for the socket needs it, so a node reading a
// burst of frames does not look at the clock for each (as a real node's
// silence check, the deadline counts from when the reader starts waiting).
func (f *frameReader) wait(n int) {
	if f.arm != nil && f.r.Buffered() < n {
		f.arm()
	}
}

func (f *frameReader) read() (wire.Kind, []byte, error) {
	f.release()
	f.wait(wire.HeaderSize)
	h, err := f.r.Peek(wire.HeaderSize)
	if err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(h[:4])) - 2
	if n < 0 || n > 64<<20 {
		return 0, nil, errors.New("bad frame length")
	}
	kind := wire.Kind(binary.BigEndian.Uint16(h[4:6]))
	if wire.HeaderSize+n <= f.r.Size() {
		f.wait(wire.HeaderSize + n)
		b, err := f.r.Peek(wire.HeaderSize + n)
		if err != nil {
			return 0, nil, err
		}
		f.discard = wire.HeaderSize + n
		return kind, b[wire.HeaderSize:], nil
	}
	_, _ = f.r.Discard(wire.HeaderSize)
	bp := payloads.Get().(*[]byte)
	if cap(*bp) < n {
		*bp = make([]byte, n)
	}
	f.big = bp
	p := (*bp)[:n]
	f.wait(wire.HeaderSize + n)
	if _, err := io.ReadFull(f.r, p); err != nil {
		return 0, nil, err
	}
	return kind, p, nil
}

type snapInfo struct {
	seq   uint64
	nodes int
}

// parseSnapshot reads Snapshot.seq (2) and counts Snapshot.nodes (4).
func parseSnapshot(p []byte) snapInfo {
	var s snapInfo
	walk(p, func(field int, v uint64, _ []byte) {
		switch field {
		case 2:
			s.seq = v
		case 4:
			s.nodes++
		}
	})
	return s
}

type eventInfo struct {
	seq  uint64
	kind int
}

// parseEvent reads MemberEvent.seq (1) and kind (2).
func parseEvent(p []byte) eventInfo {
	var e eventInfo
	walk(p, func(field int, v uint64, _ []byte) {
		switch field {
		case 1:
			e.seq = v
		case 2:
			e.kind = int(v)
		}
	})
	return e
}

// walk calls fn for each top-level protobuf field: varints with their
// value, length-delimited fields with their bytes. It stops at anything
// else or at malformed input.
func walk(p []byte, fn func(field int, v uint64, b []byte)) {
	for len(p) > 0 {
		tag, n := binary.Uvarint(p)
		if n <= 0 {
			return
		}
		p = p[n:]
		field := int(tag >> 3)
		switch tag & 7 {
		case 0:
			v, n := binary.Uvarint(p)
			if n <= 0 {
				return
			}
			p = p[n:]
			fn(field, v, nil)
		case 2:
			l, n := binary.Uvarint(p)
			if n <= 0 || uint64(len(p)-n) < l {
				return
			}
			fn(field, 0, p[n:n+int(l)])
			p = p[n+int(l):]
		default:
			return
		}
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// cpuTime is a process's user+system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ is 100 on Linux
}

// scrape reads the mgrserver's /metrics as name{labels} → value.
func scrape(admin string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// histQuantile is the upper bound of the bucket of a scraped Prometheus
// histogram holding quantile q.
func histQuantile(m map[string]float64, name string, q float64) string {
	type bk struct {
		le  float64
		cum float64
	}
	var bs []bk
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(rest, `"}`), 64)
		if err == nil {
			bs = append(bs, bk{le, v})
		}
	}
	if len(bs) == 0 {
		return "-"
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	total := bs[len(bs)-1].cum
	if total == 0 {
		return "-"
	}
	want := max(1, q*total)
	for _, b := range bs {
		if b.cum >= want-1e-9 {
			if math.IsInf(b.le, 1) {
				return ">" + time.Duration(bs[len(bs)-2].le*float64(time.Second)).String()
			}
			return "<" + time.Duration(b.le*float64(time.Second)).String()
		}
	}
	return "-"
}

// reason classifies a session's end for the report.
func reason(err error) string {
	var ne net.Error
	switch {
	case strings.HasPrefix(err.Error(), "timeout ("):
		return err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "closed by the mgrserver"
	}
	return err.Error()
}

// status is what a load-generator process reports, one JSON line every
// 100 ms on its stdout.
type status struct {
	Complete  int64          `json:"complete"`
	Connected int64          `json:"connected"`
	Bytes     int64          `json:"bytes"`
	Redone    int64          `json:"redone"`
	Lag       int64          `json:"lag"`
	Why       map[string]int `json:"why"`
	Phases    [nPhases]hist  `json:"phases"`
}

func (g *gen) status() status {
	g.whyMu.Lock()
	why := make(map[string]int, len(g.why))
	for k, v := range g.why {
		why[k] = v
	}
	g.whyMu.Unlock()
	st := status{Complete: g.complete.Load(), Connected: g.connected.Load(), Bytes: g.bytes.Load(),
		Redone: g.redone.Load(), Lag: g.lag.Load(), Why: why}
	for i := range g.phases {
		for j := range g.phases[i] {
			st.Phases[i][j] = g.phases[i][j].Load()
		}
	}
	return st
}

// runChild simulates count nodes until its stdin closes.
func runChild(addr string, total, count int) {
	g := &gen{n: count, total: total, addr: addr, stop: make(chan struct{})}
	g.start()
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	enc := json.NewEncoder(os.Stdout)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = enc.Encode(g.status())
		case <-eof:
			g.close()
			return
		}
	}
}

// procs is the load-generator processes of one run.
type procs struct {
	cmds []*exec.Cmd
	ins  []io.Closer
	mu   sync.Mutex
	last []status
	wg   sync.WaitGroup
}

func startProcs(n, k int, addr string) (*procs, error) {
	k = max(1, min(k, n))
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p := &procs{last: make([]status, k)}
	for i := range k {
		count := n / k
		if i < n%k {
			count++
		}
		args := []string{"-child", "-addr", addr, "-total", strconv.Itoa(n), "-count", strconv.Itoa(count)}
		if genProfile != "" {
			args = append(args, "-cpuprofile", fmt.Sprintf("%s.N%d.child%d", genProfile, n, i))
		}
		cmd := exec.Command(self, args...)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			p.close()
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			p.close()
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			p.close()
			return nil, err
		}
		p.cmds, p.ins = append(p.cmds, cmd), append(p.ins, in)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			dec := json.NewDecoder(out)
			for {
				var st status
				if dec.Decode(&st) != nil {
					return
				}
				p.mu.Lock()
				p.last[i] = st
				p.mu.Unlock()
			}
		}()
	}
	return p, nil
}

// status sums the processes' last reports.
func (p *procs) status() status {
	p.mu.Lock()
	defer p.mu.Unlock()
	sum := status{Why: map[string]int{}}
	for _, st := range p.last {
		sum.Complete += st.Complete
		sum.Connected += st.Connected
		sum.Bytes += st.Bytes
		sum.Redone += st.Redone
		sum.Lag = max(sum.Lag, st.Lag)
		for k, v := range st.Why {
			sum.Why[k] += v
		}
		for i := range st.Phases {
			for j := range st.Phases[i] {
				sum.Phases[i][j] += st.Phases[i][j]
			}
		}
	}
	return sum
}

// cpu is the processes' CPU time so far.
func (p *procs) cpu() time.Duration {
	var d time.Duration
	for _, c := range p.cmds {
		d += cpuTime(c.Process.Pid)
	}
	return d
}

// close stops every process and waits for it.
func (p *procs) close() {
	for _, in := range p.ins {
		_ = in.Close()
	}
	for _, c := range p.cmds {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	p.wg.Wait()
}
