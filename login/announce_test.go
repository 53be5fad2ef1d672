package login

import (
	"testing"

	"github.com/xserver/xserver/common"
)

func TestAnnouncementRoundTrip(t *testing.T) {
	gw := common.NewNodeID()
	for _, a := range []Announcement{
		{Gateway: gw, Sid: 0xabc, Account: "alice"},
		{Gateway: gw, Sid: 1, Account: "a b c"}, // accounts may hold spaces
		{Gateway: gw, Flush: true},
	} {
		got, ok := ParseAnnouncement(a.String())
		if !ok || got != a {
			t.Fatalf("%q: got %+v %v", a.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "x", gw.String(), gw.String() + " ", gw.String() + " 12", gw.String() + " zz alice", gw.String() + " 12 ", "nope 12 alice", gw.String() + " 11111111111111111 a"} {
		if a, ok := ParseAnnouncement(bad); ok {
			t.Fatalf("%q parsed as %+v", bad, a)
		}
	}
}

func FuzzParseAnnouncement(f *testing.F) {
	gw := common.NewNodeID()
	f.Add(Announcement{Gateway: gw, Sid: 7, Account: "bob"}.String())
	f.Add(Announcement{Gateway: gw, Flush: true}.String())
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, p string) {
		a, ok := ParseAnnouncement(p)
		if !ok {
			return
		}
		b, ok := ParseAnnouncement(a.String())
		if !ok || b != a {
			t.Fatalf("%q: %+v re-encoded as %q gives %+v %v", p, a, a.String(), b, ok)
		}
	})
}
