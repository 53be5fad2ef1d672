package demo

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/examples/internal/game"
)

// Attach describes how to join a node of one's own to the running demo.
type Attach struct {
	Cluster string // the demo's cluster name
	Redis   string // the Redis address the cluster uses
	// SecretFile holds the generated secret; "" when the caller gave it
	// (XSERVER_SECRET), so it is already in the caller's environment.
	SecretFile string
	Echo       string          // path of the echo example binary
	Type       common.NodeType // the type the recipe gives the echo node
	Stateful   string          // the login service's stateful types
	CmdOffset  uint64          // the gateway's -cmd-offset
}

// Lines is the recipe: a heading, the one-line command, and how the login
// service binds players (with the flag that changes it).
func (a Attach) Lines() []string {
	secret := "XSERVER_SECRET=$(cat " + shellQuote(a.SecretFile) + ") "
	if a.SecretFile == "" {
		secret = "" // exported by the caller
	}
	lo := uint64(a.Type) * a.CmdOffset
	env := ""
	if a.SecretFile == "" {
		env = ", with the same XSERVER_SECRET exported"
	}
	return []string{
		fmt.Sprintf("attach your own node, e.g. the echo example as type %d (players' cmds %d…%d reach it)%s:", a.Type, lo, lo+a.CmdOffset-1, env),
		fmt.Sprintf("  %sXSERVER_CLUSTER=%s XSERVER_REDIS=%s %s -type %d",
			secret, shellQuote(a.Cluster), shellQuote(a.Redis), shellQuote(a.Echo), a.Type),
		fmt.Sprintf("the login service binds each player to one instance of the stateful types %s (-stateful, default %s); other types are load-balanced per message. To make yours stateful: make run DEMO_ARGS=\"-stateful %s,%d\"",
			a.Stateful, DefaultStateful(), a.Stateful, a.Type),
	}
}

// CheckStateful checks a comma list of stateful node types as
// examples/login's -stateful takes it (game types, 4 and above, each
// once) and that it keeps the lobby's type: the demo's players need their
// lobby.
func CheckStateful(s string) error {
	seen := make(map[common.NodeType]bool)
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			return fmt.Errorf("%q is not a node type", f)
		}
		t := common.NodeType(v)
		if t < common.FirstGameType {
			return fmt.Errorf("type %d is the framework's: game types start at %d", v, common.FirstGameType)
		}
		if seen[t] {
			return fmt.Errorf("type %d listed twice", v)
		}
		seen[t] = true
	}
	if !seen[game.LobbyType] {
		return fmt.Errorf("the lobby's type %d must stay in the list", game.LobbyType)
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it holds anything but
// letters, digits and -_./:,@=+.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,@=+", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
