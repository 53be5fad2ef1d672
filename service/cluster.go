package service

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterReloadInterval bounds how stale a Redis Cluster client's slot
// map can be while commands run: go-redis reloads it (CLUSTER SLOTS,
// in the background) when it is older than this. Its default is 60 s, and
// it reloads early only on MOVED/ASK replies, which a dead master never
// sends: after a master failover every command for that master's slots
// then went to the dead address for up to a minute.
const ClusterReloadInterval = time.Second

// newClusterClient builds a Cluster client that follows failovers within
// about a second of the promotion: the slot map is reloaded every
// ClusterReloadInterval, and at once (coalesced by go-redis) after any
// command fails for a reason other than a Redis reply, such as a refused
// or broken connection or CLUSTERDOWN.
func newClusterClient(opts *redis.UniversalOptions) *redis.ClusterClient {
	co := opts.Cluster()
	co.ClusterStateReloadInterval = ClusterReloadInterval
	c := redis.NewClusterClient(co)
	c.AddHook(reloadOnFailure{c})
	return c
}

// reloadOnFailure asks the cluster client for a fresh slot map when a
// command fails in a way that can mean the topology changed.
type reloadOnFailure struct{ c *redis.ClusterClient }

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) check(err error) {
	if topologyError(err) {
		// Asynchronous and coalesced: cheap to call on every failure.
		h.c.ReloadState(context.Background())
	}
}

// topologyError reports a failure that a new slot map may cure: the
// network (a dead or unreachable node), a closed pool, a timeout, or a
// cluster that says it is down or that the node is not (or no longer)
// the master. Ordinary Redis replies (a miss, WRONGTYPE, a script error)
// are not.
func topologyError(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, redis.TxFailedErr) || errors.Is(err, context.Canceled) {
		return false
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range []string{"CLUSTERDOWN", "READONLY", "MASTERDOWN", "TRYAGAIN", "LOADING"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrClosed) || strings.Contains(err.Error(), "connection")
}
