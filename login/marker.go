package login

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xserver/xserver/common"
)

// Redis can lose its data (a restart without persistence, a failover to a
// replica that missed writes). Live sessions then have no records and no
// bindings, and a login could bind an account that is still playing to
// another instance. The cluster's marker key detects it: gateways read it
// every second, and when it is missing or changed they restore every live
// session's keys and add themselves to the marker's restored set. Logins
// wait (ErrUnavailable) until every live gateway has done so, at most
// RestoreGrace after the marker appeared.

// RestoreGrace bounds how long logins wait for gateways to restore their
// sessions after Redis lost its data.
const RestoreGrace = 30 * time.Second

// MarkerKey is the cluster's data-loss marker: "<unix ms> <random hex>",
// no expiry.
func MarkerKey(cluster string) string { return "xserver:{" + clusterOr(cluster) + "}:marker" }

func restoredKey(cluster, marker string) string {
	return "xserver:{" + clusterOr(cluster) + "}:restored:" + marker
}

func clusterOr(c string) string {
	if c == "" {
		return DefaultCluster
	}
	return c
}

// EnsureMarker returns the cluster's marker, creating it when missing.
func EnsureMarker(ctx context.Context, rdb redis.Cmdable, cluster string) (string, error) {
	k := MarkerKey(cluster)
	v, err := rdb.Get(ctx, k).Result()
	if err == nil {
		return v, nil
	}
	if !errors.Is(err, redis.Nil) {
		return "", unavailable("read marker", err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	nv := strconv.FormatInt(time.Now().UnixMilli(), 10) + " " + hex.EncodeToString(b[:])
	if err := rdb.SetNX(ctx, k, nv, 0).Err(); err != nil {
		return "", unavailable("create marker", err)
	}
	v, err = rdb.Get(ctx, k).Result()
	if err != nil {
		return "", unavailable("read marker", err)
	}
	return v, nil
}

// MarkRestored records that gateway gw holds no session without its keys
// under marker.
func MarkRestored(ctx context.Context, rdb redis.Cmdable, cluster, marker string, gw common.NodeID) error {
	k := restoredKey(cluster, marker)
	pipe := rdb.Pipeline()
	pipe.SAdd(ctx, k, gw.String())
	pipe.PExpire(ctx, k, 2*RestoreGrace)
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("mark restored", err)
	}
	return nil
}

// ErrRestoring is wrapped (with ErrUnavailable) by Login while gateways
// restore their sessions after Redis lost its data.
var ErrRestoring = errors.New("login: gateways are restoring sessions after Redis lost its data")

// checkRestored refuses logins while live gateways have not restored
// their sessions under a recent marker.
func (s *Service) checkRestored(ctx context.Context, now time.Time) error {
	m, err := EnsureMarker(ctx, s.cfg.Redis, s.cfg.Cluster)
	if err != nil {
		return err
	}
	ms, _, _ := strings.Cut(m, " ")
	at, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || now.Sub(time.UnixMilli(at)) > RestoreGrace {
		return nil
	}
	done, err := s.cfg.Redis.SMembers(ctx, restoredKey(s.cfg.Cluster, m)).Result()
	if err != nil {
		return unavailable("read restored", err)
	}
	have := make(map[string]bool, len(done))
	for _, id := range done {
		have[id] = true
	}
	for _, gw := range s.cfg.Members.GetNodeList(common.Gateway) {
		if !have[gw.GetID().String()] {
			return fmt.Errorf("%w: %w (gateway %s)", ErrUnavailable, ErrRestoring, gw.GetID())
		}
	}
	return nil
}
