package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterNodeTimeout is the cluster-node-timeout of a test cluster: a
// master silent this long is failed and its replica promoted (a second or
// two later).
const ClusterNodeTimeout = time.Second

// clusterFormTimeout bounds forming the cluster and each wait on it.
const clusterFormTimeout = 30 * time.Second

// Cluster is a Redis Cluster of redis-server child processes: masters
// that share the 16384 slots evenly, each with replicas.
type Cluster struct {
	tb    testing.TB
	Nodes []*Server // masters first, then replicas, in the order created
}

// StartCluster starts masters × (1 + replicasPer) redis-server processes
// in cluster mode on free ports, assigns the slots to the masters in even
// ranges, attaches replicasPer replicas to each master and waits until
// every node reports cluster_state:ok and every replica is in sync. The
// processes are killed by tb.Cleanup.
func StartCluster(tb testing.TB, masters, replicasPer int) *Cluster {
	tb.Helper()
	c := &Cluster{tb: tb}
	args := []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout / time.Millisecond)),
		"--cluster-replica-validity-factor", "0", // any replica may be promoted
	}
	n := masters * (1 + replicasPer)
	for range n {
		c.Nodes = append(c.Nodes, start(tb, args...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterFormTimeout)
	defer cancel()
	clients := make([]*redis.Client, n)
	for i, s := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr()})
		defer clients[i].Close()
	}
	for _, s := range c.Nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(s.port)).Err(); err != nil {
			tb.Fatalf("redistest: cluster meet %s: %v", s.Addr(), err)
		}
	}
	const slots = 16384
	for i := 0; i < masters; i++ {
		lo, hi := i*slots/masters, (i+1)*slots/masters-1
		if err := clients[i].ClusterAddSlotsRange(ctx, lo, hi).Err(); err != nil {
			tb.Fatalf("redistest: assign slots %d-%d: %v", lo, hi, err)
		}
	}
	c.waitFor(ctx, "every node to know every other", func() bool {
		for _, cl := range clients {
			nodes, err := cl.ClusterNodes(ctx).Result()
			if err != nil || strings.Count(strings.TrimSpace(nodes), "\n")+1 != n || strings.Contains(nodes, "handshake") {
				return false
			}
		}
		return true
	})
	for r := masters; r < n; r++ {
		master := clients[(r-masters)%masters]
		id, err := master.ClusterMyID(ctx).Result()
		if err != nil {
			tb.Fatalf("redistest: cluster myid: %v", err)
		}
		if err := clients[r].ClusterReplicate(ctx, id).Err(); err != nil {
			tb.Fatalf("redistest: replicate %s: %v", c.Nodes[r].Addr(), err)
		}
	}
	c.waitFor(ctx, "cluster_state:ok and replicas in sync", func() bool {
		for i, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			if i >= masters {
				repl, err := cl.Info(ctx, "replication").Result()
				if err != nil || !strings.Contains(repl, "master_link_status:up") {
					return false
				}
			}
		}
		return true
	})
	return c
}

// Addrs lists every node's address, for a client's seed list.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// MasterOf returns the node that is master of key's slot now, asking a
// running node. It fails the test if no running node answers.
func (c *Cluster) MasterOf(key string) *Server {
	c.tb.Helper()
	m := c.masterOrNil(key)
	if m == nil {
		c.tb.Fatalf("redistest: no running node names the master of %q", key)
	}
	return m
}

// masterOrNil is MasterOf without failing: nil when no running node
// names a running master.
func (c *Cluster) masterOrNil(key string) *Server {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.running() {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		var ranges []redis.ClusterSlot
		if err == nil {
			ranges, err = cl.ClusterSlots(ctx).Result()
		}
		cl.Close()
		if err != nil {
			continue
		}
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 {
				if m := c.byAddr(r.Nodes[0].Addr); m != nil {
					return m
				}
			}
		}
	}
	return nil
}

// Masters returns the running nodes that are masters of at least one slot.
func (c *Cluster) Masters() []*Server {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range c.running() {
		cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
		ranges, err := cl.ClusterSlots(ctx).Result()
		cl.Close()
		if err != nil {
			continue
		}
		seen := map[*Server]bool{}
		var out []*Server
		for _, r := range ranges {
			if len(r.Nodes) == 0 {
				continue
			}
			if m := c.byAddr(r.Nodes[0].Addr); m != nil && !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
		return out
	}
	c.tb.Fatal("redistest: no running cluster node answers CLUSTER SLOTS")
	return nil
}

// WaitMasterChange waits until a running node other than old is master
// of key's slot and every running node reports cluster_state:ok; it
// returns when that was first seen.
func (c *Cluster) WaitMasterChange(key string, old *Server) time.Time {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterFormTimeout)
	defer cancel()
	c.waitFor(ctx, "a replica promoted for "+key, func() bool {
		for _, s := range c.running() {
			cl := redis.NewClient(&redis.Options{Addr: s.Addr()})
			info, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
		}
		m := c.masterOrNil(key)
		return m != nil && m != old
	})
	return time.Now()
}

// Client returns a plain go-redis cluster client (go-redis defaults),
// closed by tb.Cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cl := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { _ = cl.Close() })
	return cl
}

func (c *Cluster) running() []*Server {
	var out []*Server
	for _, s := range c.Nodes {
		s.mu.Lock()
		up := s.proc != nil
		s.mu.Unlock()
		if up {
			out = append(out, s)
		}
	}
	return out
}

func (c *Cluster) byAddr(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

func (c *Cluster) waitFor(ctx context.Context, what string, cond func() bool) {
	c.tb.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			var logs []string
			for _, s := range c.Nodes {
				logs = append(logs, fmt.Sprintf("%s: %s", s.Addr(), s.logTail()))
			}
			c.tb.Fatalf("redistest: timed out waiting for %s\n%s", what, strings.Join(logs, "\n"))
		case <-tick.C:
		}
	}
}
