package gateway_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xserver/xserver/common/wire"
)

// groupBenchEnv holds the client side of BenchmarkGroupBroadcast: the
// benchmark runs this test binary again as a child process holding every
// client connection (a process may hold only so many open files).
const groupBenchEnv = "XSERVER_GROUPBENCH_TICKETS"

// groupBenchWindow is how many messages BenchmarkGroupBroadcast keeps in
// flight.
const groupBenchWindow = 4

// BenchmarkGroupBroadcast measures one node broadcasting to a group of
// members (10 000 by default, XSERVER_GROUPBENCH_MEMBERS to change) whose
// sessions are spread over 2 gateways: broadcasts per second until every
// member got every one, and the delivery latency from the node's call to
// the member's read. At most groupBenchWindow messages are in flight (sent
// and not yet at every member), so the latency is that of a loaded
// cluster, not of a queue the benchmark filled. path=group is one
// BroadcastGroup per message; the baselines in the same run: path=all,
// BroadcastClientMsg to every client (the same fan-out, no membership),
// and path=per-member, what a game did without groups: one
// SendClientMsgByRelay per member per message.
func BenchmarkGroupBroadcast(b *testing.B) {
	members := 10000
	if v, err := strconv.Atoi(os.Getenv("XSERVER_GROUPBENCH_MEMBERS")); err == nil && v > 0 {
		members = v
	}
	for _, path := range []string{"group", "all", "per-member"} {
		b.Run(fmt.Sprintf("path=%s/members=%d", path, members), func(b *testing.B) {
			benchGroup(b, path, members)
		})
	}
}

func benchGroup(b *testing.B, path string, members int) {
	e := newEnvWith(b, 2, func(c *gatewayConfig) {
		c.LoginTimeout = 10 * time.Second
		c.ClientQueueBytes = 1 << 20
	})
	lobby := e.startGame(lobbyType)
	e.ready()
	ctx := context.Background()
	var sb strings.Builder
	accounts := make([]string, members)
	for i := range accounts {
		accounts[i] = fmt.Sprintf("gb-%05d", i)
		tk, err := e.login.Login(ctx, accounts[i], "pw")
		if err != nil {
			b.Fatal(err)
		}
		// Half on each gateway: a token is good at any gateway.
		fmt.Fprintf(&sb, "%s %s %s\n", e.gws[i%2].Addrs().Client, tk.Token, accounts[i])
	}
	file := filepath.Join(b.TempDir(), "tickets")
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGroupBenchClients$", "-test.v")
	cmd.Env = append(os.Environ(), groupBenchEnv+"="+file)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	expect := func(prefix string) string {
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, prefix) {
				return strings.TrimPrefix(l, prefix)
			}
		}
		b.Fatalf("client process ended before %q", prefix)
		return ""
	}
	expect("ready")
	if path == "group" {
		for _, a := range accounts {
			for lobby.JoinGroup("bench", a) != nil {
				time.Sleep(time.Millisecond) // link queue full: let it drain
			}
		}
		waitFor(b, 60*time.Second, "every member joined", func() bool {
			got, err := lobby.GroupMembers(ctx, "bench")
			return err == nil && len(got) == members
		})
	}
	n := b.N
	fmt.Fprintf(stdin, "expect %d %d\n", n, members)
	expect("go")
	// Completions ("c <seq>": every member has message seq) open the window.
	window := make(chan struct{}, groupBenchWindow)
	for i := 0; i < groupBenchWindow; i++ {
		window <- struct{}{}
	}
	done := make(chan string, 1)
	go func() {
		for lines.Scan() {
			l := lines.Text()
			switch {
			case strings.HasPrefix(l, "c "):
				window <- struct{}{}
			case strings.HasPrefix(l, "done "):
				done <- strings.TrimPrefix(l, "done ")
				return
			}
		}
		close(done)
	}()
	payload := make([]byte, 64)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n; i++ {
		<-window
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(payload[8:], uint64(i))
		switch path {
		case "group":
			for lobby.BroadcastGroup("bench", 4100, payload) != nil {
				time.Sleep(100 * time.Microsecond) // the link's queue is full
			}
		case "all":
			for lobby.BroadcastClientMsg(4100, payload) != nil {
				time.Sleep(100 * time.Microsecond)
			}
		default:
			for _, a := range accounts {
				for lobby.SendClientMsgByRelay(a, 4100, payload) != nil {
					time.Sleep(100 * time.Microsecond)
				}
			}
		}
	}
	res, ok := <-done
	if !ok {
		b.Fatal("client process ended before its summary")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var p50, p99, shed int64
	if _, err := fmt.Sscanf(res, "%d %d %d", &p50, &p99, &shed); err != nil {
		b.Fatalf("client summary %q: %v", res, err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(n*members)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(p50), "p50-µs")
	b.ReportMetric(float64(p99), "p99-µs")
	b.ReportMetric(float64(shed), "shed")
	b.ReportMetric(0, "ns/op")
}

// TestGroupBenchClients is BenchmarkGroupBroadcast's client process: it
// logs in every ticket of the file named by groupBenchEnv, says "ready",
// reads "expect <messages> <members>" on stdin, prints "c <seq>" when
// every member got message seq, and once every message arrived (or was
// shed) "done <p50 µs> <p99 µs> <shed>". Skipped otherwise.
func TestGroupBenchClients(t *testing.T) {
	file := os.Getenv(groupBenchEnv)
	if file == "" {
		t.Skip("the client side of BenchmarkGroupBroadcast")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if p := os.Getenv("XSERVER_GROUPBENCH_CHILDPROF"); p != "" {
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	var conns []net.Conn
	var mu sync.Mutex
	var lat []int64 // µs, every delivery
	var got, shed atomic.Int64
	all := make(chan struct{})
	var want atomic.Int64
	want.Store(-1)
	counts := make([]atomic.Int64, 1<<20)
	var members int64
	check := func() {
		if w := want.Load(); w >= 0 && got.Load()+shed.Load() >= w {
			select {
			case <-all:
			default:
				close(all)
			}
		}
	}
	var wg sync.WaitGroup
	rows := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 0; i < len(rows); i += 500 {
		var batch sync.WaitGroup
		for _, row := range rows[i:min(i+500, len(rows))] {
			f := strings.Fields(row)
			c, err := net.DialTimeout("tcp", f[0], 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			if _, err := c.Write(wire.AppendLogin(nil, f[2], f[1])); err != nil {
				t.Fatal(err)
			}
			batch.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := wire.NewReader(c, 1<<20, 4096)
				if k, p, err := r.ReadFrame(); err != nil || k != wire.KindClientLoginAck || p[1] != 0 {
					t.Errorf("%s: login: %v %s", f[2], err, k)
					batch.Done()
					return
				}
				batch.Done()
				mine := make([]int64, 0, 64)
				for {
					k, p, err := r.ReadFrame()
					if err != nil {
						break
					}
					switch k {
					case wire.KindClientData:
						if len(p) >= 24 {
							mine = append(mine, (time.Now().UnixNano()-int64(binary.BigEndian.Uint64(p[8:])))/1e3)
							if seq := binary.BigEndian.Uint64(p[16:]); seq < uint64(len(counts)) && counts[seq].Add(1) == atomic.LoadInt64(&members) {
								fmt.Printf("c %d\n", seq)
							}
						}
						got.Add(1)
					case wire.KindClientShed:
						if s, err := wire.DecodeShed(p); err == nil {
							shed.Add(int64(s.Count))
						}
					}
					check()
					if len(mine) >= 1024 {
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
						mine = mine[:0]
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		batch.Wait()
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n, m int64
		if _, err := fmt.Sscanf(in.Text(), "expect %d %d", &n, &m); err == nil {
			atomic.StoreInt64(&members, m)
			want.Store(n * m)
			fmt.Println("go")
			check()
			break
		}
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		t.Errorf("only %d of %d messages arrived", got.Load()+shed.Load(), want.Load())
	}
	for _, c := range conns {
		_ = c.Close()
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		lat = []int64{0}
	}
	fmt.Printf("done %d %d %d\n", lat[len(lat)/2], lat[len(lat)*99/100], shed.Load())
}
