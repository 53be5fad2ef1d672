package login

import (
	"context"
	"fmt"
	"testing"

	"github.com/xserver/xserver/discovery"
)

func versioned(m fakeMember, v string) fakeMember { m.ver = v; return m }

// A gray release of the lobby at 10 %: of 2 000 new players, 10 % ± 3 %
// are bound to the new version's instance (listed accounts always), the
// others to the old ones; the type without a rollout is untouched.
func TestRolloutShare(t *testing.T) {
	rs, err := discovery.ParseRollouts(fmt.Sprintf("type=%d,version=2.0,share=10%%,accounts=qa-1|qa-2", typeLobby))
	if err != nil {
		t.Fatal(err)
	}
	members := []fakeMember{gateway(1, "203.0.113.1", 7000, 0, 0), instance(20, typeBattle, 0)}
	for i := byte(10); i < 15; i++ {
		members = append(members, versioned(instance(i, typeLobby, 0), "1.0"))
	}
	members = append(members, versioned(instance(15, typeLobby, 0), "2.0"))
	e := newEnv(t, func(c *Config) { c.Rollouts = rs }, members...)

	const n = 2000
	gray := 0
	for i := range n {
		account := fmt.Sprintf("player-%d", i)
		tk := e.login(t, account)
		onNew := tk.Bindings[typeLobby] == idN(15)
		if onNew != rs[0].In(account) {
			t.Fatalf("%s bound to %v; its side of the rollout is new=%v", account, tk.Bindings[typeLobby], rs[0].In(account))
		}
		if onNew {
			gray++
		}
	}
	if gray < n*7/100 || gray > n*13/100 {
		t.Fatalf("%d of %d new players on the new version, want 10 %% ± 3 %%", gray, n)
	}
	t.Logf("%d of %d (%.1f %%) on the new version", gray, n, 100*float64(gray)/n)
	for _, a := range []string{"qa-1", "qa-2"} {
		if tk := e.login(t, a); tk.Bindings[typeLobby] != idN(15) {
			t.Errorf("listed %s bound to %v", a, tk.Bindings[typeLobby])
		}
	}
}

// A player bound before the rollout keeps its instance: the rollout
// decides new bindings only. Once its binding expires (its session ended
// and the affinity passed) it gets its side's version.
func TestRolloutKeepsBindings(t *testing.T) {
	rs, err := discovery.ParseRollouts(fmt.Sprintf("type=%d,version=2.0,share=100%%", typeLobby))
	if err != nil {
		t.Fatal(err)
	}
	old := []fakeMember{gateway(1, "203.0.113.1", 7000, 0, 0), instance(20, typeBattle, 0),
		versioned(instance(10, typeLobby, 0), "1.0")}
	e := newEnv(t, func(c *Config) { c.Rollouts = rs }, old...)
	// No instance of 2.0 yet: everyone goes to 1.0.
	if tk := e.login(t, "alice"); tk.Bindings[typeLobby] != idN(10) {
		t.Fatalf("alice bound to %v", tk.Bindings[typeLobby])
	}
	e.src.set(append(old, versioned(instance(11, typeLobby, 0), "2.0"))...)
	for range 3 {
		if tk := e.login(t, "alice"); tk.Bindings[typeLobby] != idN(10) {
			t.Fatalf("alice moved to %v", tk.Bindings[typeLobby])
		}
	}
	if tk := e.login(t, "bob"); tk.Bindings[typeLobby] != idN(11) {
		t.Fatalf("new player bob bound to %v, want the new version", tk.Bindings[typeLobby])
	}
	// Her binding expires (as it does Affinity after her session ended).
	if err := e.rdb.Del(context.Background(), KeysFor(testCluster, "alice").Bind).Err(); err != nil {
		t.Fatal(err)
	}
	if tk := e.login(t, "alice"); tk.Bindings[typeLobby] != idN(11) {
		t.Fatalf("alice after her binding expired: %v, want the new version", tk.Bindings[typeLobby])
	}
}
