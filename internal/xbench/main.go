// Command xbench measures xserver from outside, as an operator would:
// redis-server, the mgrserver, a gateway, the echo node and the example
// login service run as separate processes from a bin/ directory (make
// build), and this program is the load: K players each doing request →
// reply round trips in a loop (64-byte payload) through the gateway to the
// echo node and back. In the same run, interleaved with it, the same
// players' load goes to a one-hop raw Go echo (its own process: read a
// frame, write it back), so every relay figure has a baseline measured
// under the same machine load a few seconds apart. A third path, fwd, puts
// a byte-copying forwarder process in front of the raw echo: the least any
// relay of separate processes does (two hops, no framing, no routing), to
// tell the cost of a second process hop from the cost of the relay's work.
//
// It prints, per K and repetition, round trips per second, p50 and p99
// latency and the server CPU per round trip (user + system time of every
// xserver process, from /proc), then a summary: the relay/raw ratios as
// the median and the range over the repetitions. Protocol version 1
// players (ClientData) and version 2 players (resumable sessions:
// ClientMsg, ClientPush, acknowledgements) are measured separately.
//
// With -resume N it then measures resumes of N version 2 sessions, from
// the reconnect to the first replayed push: one at a time on the gateway
// holding them, and all at once on another gateway after the holding one
// was SIGKILLed.
//
//	make build && go run ./internal/xbench -bin bin -k 1,100,1000 -reps 3
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := mainErr(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "xbench:", err)
		os.Exit(1)
	}
}

type options struct {
	bin      string
	ks       []int
	d, warm  time.Duration
	reps     int
	v1, v2   bool
	fwd      bool
	binB     string
	resume   int
	keepLogs bool
	profile  string
}

func mainErr(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("xbench", flag.ContinueOnError)
	var o options
	var ks string
	serve := fs.String("serve-raw", "", "internal: serve the raw echo at `address`")
	fwdTo := fs.String("serve-fwd", "", "internal: serve the two-hop forwarder to the raw echo at `address`")
	fs.StringVar(&o.bin, "bin", "bin", "`directory` with mgrserver, gateway, echo and login (make build)")
	fs.StringVar(&ks, "k", "1,100,1000", "comma-separated concurrent player `counts`")
	fs.DurationVar(&o.d, "d", 3*time.Second, "measured `duration` of each run")
	fs.DurationVar(&o.warm, "warm", 500*time.Millisecond, "warm-up before each run's measurement")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of every run, interleaved")
	fs.BoolVar(&o.v1, "v1", true, "measure protocol version 1 players")
	fs.BoolVar(&o.v2, "v2", true, "measure protocol version 2 (resumable, sequenced) players")
	fs.StringVar(&o.binB, "bin-b", "", "also run a second cluster from `directory` (another build), interleaved with the first, and compare them run by run (paths named …-b)")
	fs.BoolVar(&o.fwd, "fwd", true, "also measure the two-hop forwarder (raw echo behind a byte-copying proxy process)")
	fs.IntVar(&o.resume, "resume", 200, "sessions for the resume latency runs (0: skip them)")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the processes' logs (their directory is printed)")
	fs.StringVar(&o.profile, "profile", "", "write CPU profiles of the gateway and the echo node during each relay run of the first repetition to `directory`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *fwdTo != "" {
		return serveFwd("127.0.0.1:0", *fwdTo)
	}
	if *serve != "" {
		return serveRaw(*serve)
	}
	for _, s := range strings.Split(ks, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 1 {
			return fmt.Errorf("-k %q: %v", ks, err)
		}
		o.ks = append(o.ks, k)
	}
	return bench(o, out)
}

func bench(o options, out io.Writer) error {
	dir, err := os.MkdirTemp("", "xbench-")
	if err != nil {
		return err
	}
	if o.keepLogs {
		fmt.Fprintln(out, "logs:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	header(out, o)

	raw, rawAddr, err := startSelf(dir, "raw", "-serve-raw", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer raw.kill()
	fwd, fwdAddr, err := startSelf(dir, "fwd", "-serve-fwd", rawAddr)
	if err != nil {
		return err
	}
	defer fwd.kill()
	c, err := startCluster(o.bin, dir, 30*time.Second, o.profile != "")
	if c != nil {
		defer c.close()
	}
	if err != nil {
		return err
	}
	kmax := 0
	for _, k := range o.ks {
		kmax = max(kmax, k)
	}
	fmt.Fprintf(out, "connecting %d players per path…\n", kmax)
	rawPs, err := connect(kmax, func(i int) (*player, error) { return dialRaw(rawAddr) })
	if err != nil {
		return err
	}
	defer closeAll(rawPs)
	paths := []path{{name: "raw", ps: rawPs, cpu: func() time.Duration { return cpuOf(raw) }}}
	if o.fwd {
		fwdPs, err := connect(kmax, func(i int) (*player, error) { return dialRaw(fwdAddr) })
		if err != nil {
			return err
		}
		defer closeAll(fwdPs)
		paths = append(paths, path{name: "fwd", ps: fwdPs, cpu: func() time.Duration { return cpuOf(fwd, raw) }})
	}
	clusters := []struct {
		c      *cluster
		suffix string
	}{{c, ""}}
	if o.binB != "" {
		bdir := filepath.Join(dir, "b")
		if err := os.MkdirAll(bdir, 0o755); err != nil {
			return err
		}
		cb, err := startCluster(o.binB, bdir, 30*time.Second, false)
		if cb != nil {
			defer cb.close()
		}
		if err != nil {
			return fmt.Errorf("-bin-b: %w", err)
		}
		clusters = append(clusters, struct {
			c      *cluster
			suffix string
		}{cb, "-b"})
	}
	// A build's path and the other build's follow each other, so a
	// comparison of the two is made seconds apart.
	for _, v := range []struct {
		on   bool
		name string
		v2   bool
	}{{o.v1, "relay-v1", false}, {o.v2, "relay-v2", true}} {
		if !v.on {
			continue
		}
		for _, cl := range clusters {
			servers := func() time.Duration { return cpuOf(cl.c.servers...) }
			ps, err := connect(kmax, func(i int) (*player, error) {
				t, err := cl.c.ticket(context.Background(), fmt.Sprintf("xb-%s-%d", v.name, i))
				if err != nil {
					return nil, err
				}
				return login(cl.c.gws[0].client, t, v.v2)
			})
			if err != nil {
				return err
			}
			defer closeAll(ps)
			paths = append(paths, path{name: v.name + cl.suffix, ps: ps, cpu: servers})
		}
	}

	res := map[string]map[int][]result{}
	for _, p := range paths {
		res[p.name] = map[int][]result{}
	}
	fmt.Fprintf(out, "\n%-8s %-4s %-9s %10s %9s %9s %11s %7s\n", "K", "rep", "path", "rt/s", "p50", "p99", "cpu/rt", "ratio")
	for rep := 1; rep <= o.reps; rep++ {
		for _, k := range o.ks {
			var base float64
			for _, p := range paths {
				var prof sync.WaitGroup
				if o.profile != "" && rep == 1 && strings.HasPrefix(p.name, "relay") {
					profileDuring(&prof, o, c, fmt.Sprintf("%s-k%d", p.name, k))
				}
				r, err := run(p.ps[:k], o.d, o.warm, p.cpu)
				prof.Wait()
				if err != nil {
					return fmt.Errorf("%s K=%d: %w", p.name, k, err)
				}
				res[p.name][k] = append(res[p.name][k], r)
				ratio := ""
				if p.name == "raw" {
					base = r.rate()
				} else {
					ratio = fmt.Sprintf("%.2f", r.rate()/base)
				}
				fmt.Fprintf(out, "K=%-6d %-4d %-9s %10.0f %9s %9s %11s %7s\n", k, rep, p.name, r.rate(),
					us(r.pct(0.50)), us(r.pct(0.99)), us(r.cpuPerRT()), ratio)
			}
		}
	}
	summary(out, o, paths, res)

	if o.resume > 0 {
		if err := resumeBench(out, c, o); err != nil {
			return err
		}
	}
	return nil
}

// profileDuring fetches CPU profiles of the gateway and the echo node for
// the measured part of the run that starts now, into o.profile.
func profileDuring(wg *sync.WaitGroup, o options, c *cluster, name string) {
	secs := max(1, int(o.d/time.Second))
	for who, base := range map[string]string{"gateway": c.gws[0].admin, "echo": c.echoAdm} {
		for kind, url := range map[string]string{
			"pprof": fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs),
			"trace": base + "/debug/pprof/trace?seconds=1",
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(o.warm)
				fetch(url, filepath.Join(o.profile, name+"-"+who+"."+kind))
			}()
		}
	}
}

// fetch saves what url answers to file; failures are reported, not fatal.
func fetch(url, file string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xbench: profile:", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xbench: profile:", err)
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

type path struct {
	name string
	ps   []*player
	cpu  func() time.Duration
}

func header(out io.Writer, o options) {
	host, _ := os.Hostname()
	fmt.Fprintf(out, "xbench %s\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(out, "date: %s  host: %s  nproc: %d  cpu: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), cpuModel())
	fmt.Fprintf(out, "load average at start: %s\n", loadavg())
	fmt.Fprintf(out, "each run: %v warm-up, %v measured; %d repetitions; 64-byte payload\n", o.warm, o.d, o.reps)
	fmt.Fprintln(out, "cpu/rt: user+system CPU of the server processes per round trip (raw: the echo process; fwd: the forwarder + the echo; relay: mgrserver + gateway + echo node)")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if _, v, ok := strings.Cut(l, ":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown"
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// startSelf runs this program again with args (the raw echo, the
// forwarder) and reads the address it prints.
func startSelf(dir, name string, args ...string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(self, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, "", err
	}
	cmd.Stderr = f
	p := &proc{name: name, cmd: cmd, log: f.Name(), done: make(chan struct{})}
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.kill()
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return p, strings.TrimSpace(line), nil
}

// connect makes n players, 32 at a time.
func connect(n int, dial func(i int) (*player, error)) ([]*player, error) {
	ps := make([]*player, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := dial(i)
			if err != nil {
				errs <- err
				return
			}
			ps[i] = p
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		closeAll(ps)
		return nil, err
	}
	return ps, nil
}

func closeAll(ps []*player) {
	for _, p := range ps {
		if p != nil {
			_ = p.c.Close()
		}
	}
}

func us(d time.Duration) string {
	switch {
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d >= 100*time.Microsecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.1fµs", float64(d)/1e3)
	}
}

// summary prints, per K and relay path, the medians and ranges over the
// repetitions of the same-run ratios.
func summary(out io.Writer, o options, paths []path, res map[string]map[int][]result) {
	fmt.Fprintf(out, "\nsummary: median (min–max) over %d repetitions; every ratio is relay / raw of the same repetition\n", o.reps)
	for _, k := range o.ks {
		raws := res["raw"][k]
		fmt.Fprintf(out, "K=%d raw: %s rt/s, p50 %s, p99 %s, cpu/rt %s\n", k,
			spread(raws, func(r result, _ result) float64 { return r.rate() }, "%.0f"),
			spreadD(raws, func(r result) time.Duration { return r.pct(0.5) }),
			spreadD(raws, func(r result) time.Duration { return r.pct(0.99) }),
			spreadD(raws, result.cpuPerRT))
		for _, p := range paths[1:] {
			rs := res[p.name][k]
			pair := func(f func(r, raw result) float64) string {
				v := make([]float64, len(rs))
				for i := range rs {
					v[i] = f(rs[i], raws[i])
				}
				return medRange(v, "%.2f")
			}
			fmt.Fprintf(out, "K=%d %s: ratio %s; p50 %s, p99 %s (p99 / raw p99 %s); cpu/rt %s\n", k, p.name,
				pair(func(r, raw result) float64 { return r.rate() / raw.rate() }),
				spreadD(rs, func(r result) time.Duration { return r.pct(0.5) }),
				spreadD(rs, func(r result) time.Duration { return r.pct(0.99) }),
				pair(func(r, raw result) float64 { return float64(r.pct(0.99)) / float64(raw.pct(0.99)) }),
				spreadD(rs, result.cpuPerRT))
		}
		for _, p := range paths {
			bs, ok := res[p.name+"-b"][k]
			if !ok {
				continue
			}
			as := res[p.name][k]
			rate, cpu := make([]float64, len(as)), make([]float64, len(as))
			for i := range as {
				rate[i] = bs[i].rate() / as[i].rate()
				cpu[i] = float64(bs[i].cpuPerRT()) / float64(as[i].cpuPerRT())
			}
			fmt.Fprintf(out, "K=%d %s-b / %s, run by run: rt/s %s, cpu/rt %s\n", k, p.name, p.name,
				medRange(rate, "%.3f"), medRange(cpu, "%.3f"))
		}
	}
}

func spread(rs []result, f func(result, result) float64, format string) string {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r, r)
	}
	return medRange(v, format)
}

func spreadD(rs []result, f func(result) time.Duration) string {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = float64(f(r))
	}
	sort.Float64s(v)
	if len(v) == 1 {
		return us(time.Duration(v[0]))
	}
	return fmt.Sprintf("%s (%s–%s)", us(time.Duration(median(v))), us(time.Duration(v[0])), us(time.Duration(v[len(v)-1])))
}

func medRange(v []float64, format string) string {
	sort.Float64s(v)
	if len(v) == 1 {
		return fmt.Sprintf(format, v[0])
	}
	return fmt.Sprintf(format+" ("+format+"–"+format+")", median(v), v[0], v[len(v)-1])
}

func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func resumeBench(out io.Writer, c *cluster, o options) error {
	fmt.Fprintf(out, "\nresume: %d version 2 sessions, each with one push to replay; time from the reconnect (dial) to the first replayed push\n", o.resume)
	for rep := 1; rep <= o.reps; rep++ {
		lat, err := c.resumeSame(o.resume, rep)
		if err != nil {
			return fmt.Errorf("resume, same gateway: %w", err)
		}
		fmt.Fprintf(out, "rep %d same gateway, one at a time:   p50 %s  p99 %s  max %s\n", rep, us(pctD(lat, 0.5)), us(pctD(lat, 0.99)), us(lat[len(lat)-1]))
		lat, err = c.resumeKill(o.resume, rep)
		if err != nil {
			return fmt.Errorf("resume after a gateway kill: %w", err)
		}
		fmt.Fprintf(out, "rep %d after SIGKILL, all at once: p50 %s  p99 %s  max %s\n", rep, us(pctD(lat, 0.5)), us(pctD(lat, 0.99)), us(lat[len(lat)-1]))
	}
	return nil
}

func pctD(l []time.Duration, q float64) time.Duration {
	return l[min(len(l)-1, int(float64(len(l))*q))]
}
