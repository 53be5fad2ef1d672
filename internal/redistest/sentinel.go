package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name a test Sentinel deployment monitors.
const SentinelMaster = "mymaster"

// SentinelDownAfter is the sentinels' down-after-milliseconds: a master
// silent this long is failed over (a second or two later).
const SentinelDownAfter = time.Second

// Sentinel is a Sentinel deployment of redis-server child processes: a
// master, its replicas and the sentinels watching them with a quorum of 2.
type Sentinel struct {
	tb        testing.TB
	Master    *Server   // the master at start
	Replicas  []*Server // its replicas at start
	Sentinels []*Server
}

// StartSentinel starts a master, replicas replicas of it and three
// sentinels, and waits until every sentinel sees the replicas in sync and
// the other sentinels. The processes are killed by tb.Cleanup.
func StartSentinel(tb testing.TB, replicas int) *Sentinel {
	tb.Helper()
	d := &Sentinel{tb: tb, Master: start(tb)}
	host, port, _ := net.SplitHostPort(d.Master.Addr())
	for range replicas {
		d.Replicas = append(d.Replicas, start(tb, "--replicaof", host, port))
	}
	conf := fmt.Sprintf("sentinel monitor %s %s %s 2\n"+
		"sentinel down-after-milliseconds %s %d\n"+
		"sentinel failover-timeout %s 5000\n"+
		"sentinel parallel-syncs %s 1\n",
		SentinelMaster, host, port, SentinelMaster, SentinelDownAfter.Milliseconds(), SentinelMaster, SentinelMaster)
	for range 3 {
		d.Sentinels = append(d.Sentinels, startWith(tb, func(s *Server) {
			// Sentinel rewrites its config file: one per process.
			s.conf = filepath.Join(s.dir, "sentinel.conf")
			if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
				tb.Fatalf("redistest: write sentinel config: %v", err)
			}
		}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterFormTimeout)
	defer cancel()
	waitUntil(ctx, tb, "the sentinels to see the replicas and each other", func() bool {
		for _, s := range d.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
			peers, err1 := sc.Sentinels(ctx, SentinelMaster).Result()
			reps, err2 := sc.Replicas(ctx, SentinelMaster).Result()
			sc.Close()
			if err1 != nil || err2 != nil || len(peers) != 2 || len(reps) != replicas {
				return false
			}
			for _, r := range reps {
				if r["master-link-status"] != "ok" || r["flags"] != "slave" {
					return false
				}
			}
		}
		return true
	})
	return d
}

// Addrs lists the sentinels' addresses.
func (d *Sentinel) Addrs() []string {
	out := make([]string, len(d.Sentinels))
	for i, s := range d.Sentinels {
		out[i] = s.Addr()
	}
	return out
}

// MasterAddr is the master's address as the first sentinel that answers
// names it ("" when none answers).
func (d *Sentinel) MasterAddr() string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, s := range d.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
		hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		sc.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1])
		}
	}
	return ""
}

// WaitMasterChange waits until every sentinel names a master other than
// old and that master answers as one; it returns when that was first seen.
func (d *Sentinel) WaitMasterChange(old string) time.Time {
	d.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterFormTimeout)
	defer cancel()
	waitUntil(ctx, d.tb, "a replica promoted", func() bool {
		var addr string
		for _, s := range d.Sentinels {
			sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addr()})
			hp, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
			sc.Close()
			if err != nil || len(hp) != 2 {
				return false
			}
			a := net.JoinHostPort(hp[0], hp[1])
			if a == old || (addr != "" && a != addr) {
				return false
			}
			addr = a
		}
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		return err == nil && len(role) > 0 && role[0] == "master"
	})
	return time.Now()
}

// ServerAt returns the Server listening on addr, or nil.
func (d *Sentinel) ServerAt(addr string) *Server {
	for _, s := range append([]*Server{d.Master}, d.Replicas...) {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// waitUntil polls cond until it holds or ctx ends (failing tb).
func waitUntil(ctx context.Context, tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			tb.Fatalf("redistest: timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
