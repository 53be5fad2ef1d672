package login

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/xserver/xserver/common"
)

// LoginsChannel is the cluster's Pub/Sub channel of login announcements.
// Gateways publish on it after each accepted login and each resume taken
// over from another gateway, always after writing the session record, and
// a flush after writing back records that Redis had lost or failing to
// publish an announcement. Gateways subscribe to
// end their older session of the account; nodes subscribe to keep their
// cache of offline players right. Delivery is at most once: a subscriber
// treats a broken subscription as "anything may have been missed".
func LoginsChannel(cluster string) string { return "xserver:{" + clusterOr(cluster) + "}:logins" }

// Announcement is one message of LoginsChannel.
type Announcement struct {
	Gateway common.NodeID // the gateway that published it
	// Flush: an account may have a session although no announcement said
	// so: the gateway wrote back session records that were missing (Redis
	// lost them, or they expired under live sessions), or it could not
	// publish a login's announcement. Account and Sid are empty.
	Flush   bool
	Sid     uint64 // the session now held by Gateway
	Account string
}

// flushWord is the second field of a flush announcement.
const flushWord = "flush"

// String encodes the announcement: "<gateway id> <sid hex> <account>", or
// "<gateway id> flush". A gateway of an earlier release ignores the
// second form (it has two fields).
func (a Announcement) String() string {
	if a.Flush {
		return a.Gateway.String() + " " + flushWord
	}
	return fmt.Sprintf("%s %x %s", a.Gateway, a.Sid, a.Account)
}

// ParseAnnouncement decodes a LoginsChannel message; ok is false for
// anything else (a message from a newer release, or garbage).
func ParseAnnouncement(p string) (a Announcement, ok bool) {
	gw, rest, found := strings.Cut(p, " ")
	if !found {
		return Announcement{}, false
	}
	id, err := common.ParseNodeID(gw)
	if err != nil {
		return Announcement{}, false
	}
	a.Gateway = id
	if rest == flushWord {
		a.Flush = true
		return a, true
	}
	sidHex, account, found := strings.Cut(rest, " ")
	if !found || account == "" || len(sidHex) == 0 || len(sidHex) > 16 {
		return Announcement{}, false
	}
	if a.Sid, err = strconv.ParseUint(sidHex, 16, 64); err != nil {
		return Announcement{}, false
	}
	a.Account = account
	return a, true
}
