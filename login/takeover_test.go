package login

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/internal/redistest"
)

// Takeover answers with the record as it was: the gateway taking a
// session over learns which gateway held it (its own id when the session
// was still its own), and the errors tell a newer login from a missing
// record, a wrong secret and a stale attempt.
func TestTakeoverReportsThePreviousHolder(t *testing.T) {
	srv := redistest.Start(t)
	s := &Sessions{Redis: srv.Client(t), Cluster: testCluster}
	ctx := context.Background()
	a, b := common.NewNodeID(), common.NewNodeID()
	secret := []byte("0123456789abcdef0123456789abcdef")
	rec := &SessionRecord{Gateway: a, ID: 7, SecretHash: HashSecret(secret), Window: 30 * time.Second}
	if _, err := s.Create(ctx, "alice", rec, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.Takeover(ctx, "alice", 7, secret, 1, b, time.Minute)
	if err != nil || got.Gateway != a || got.Attempt != 0 {
		t.Fatalf("first takeover: %+v %v, want the record naming %s", got, err, a)
	}
	got, err = s.Takeover(ctx, "alice", 7, secret, 2, b, time.Minute)
	if err != nil || got.Gateway != b || got.Attempt != 1 {
		t.Fatalf("takeover by the holder: %+v %v, want the record naming %s, attempt 1", got, err, b)
	}
	if _, err := s.Takeover(ctx, "alice", 7, secret, 2, a, time.Minute); !errors.Is(err, ErrStaleResume) {
		t.Fatalf("the same attempt again: %v, want ErrStaleResume", err)
	}
	if _, err := s.Takeover(ctx, "alice", 7, []byte("wrong"), 3, a, time.Minute); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("wrong secret: %v, want ErrBadSecret", err)
	}
	if _, err := s.Takeover(ctx, "bob", 7, secret, 3, a, time.Minute); !errors.Is(err, ErrNoSession) || errors.Is(err, ErrReplaced) {
		t.Fatalf("no record: %v, want ErrNoSession only", err)
	}
	if _, err := s.Create(ctx, "alice", &SessionRecord{Gateway: a, ID: 8}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Takeover(ctx, "alice", 7, secret, 3, a, time.Minute); !errors.Is(err, ErrReplaced) || !errors.Is(err, ErrNoSession) {
		t.Fatalf("after a newer login: %v, want ErrReplaced (an ErrNoSession)", err)
	}
}
