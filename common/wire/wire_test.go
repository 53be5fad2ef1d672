package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	pb "github.com/xserver/xserver/proto"
)

func TestRoundTrip(t *testing.T) {
	var buf []byte
	buf = AppendFrame(buf, KindPing, []byte("abc"))
	buf = AppendFrame(buf, KindLeave, nil)
	buf, err := AppendMessage(buf, KindRegister, &pb.Register{Mac: []byte{1, 2}, MaxEpoch: 7})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(buf), 64, 0)
	want := []struct {
		kind Kind
		n    int
	}{{KindPing, 3}, {KindLeave, 0}, {KindRegister, -1}}
	for i, w := range want {
		k, p, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if k != w.kind {
			t.Fatalf("frame %d: kind %s, want %s", i, k, w.kind)
		}
		if w.n >= 0 && len(p) != w.n {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(p), w.n)
		}
		if k == KindRegister {
			var m pb.Register
			if err := m.Unmarshal(p); err != nil || m.MaxEpoch != 7 {
				t.Fatalf("register: %v %+v", err, m)
			}
		}
	}
	if _, _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("end: %v, want EOF", err)
	}
}

func TestReaderErrors(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", AppendFrame(nil, KindPing, make([]byte, 100)), ErrFrameTooLarge},
		{"too short", []byte{0, 0, 0, 1, 0}, ErrFrameTooShort},
		{"cut in header", []byte{0, 0, 0, 5, 0}, io.ErrUnexpectedEOF},
		{"cut in payload", []byte{0, 0, 0, 5, 0, 1, 2}, io.ErrUnexpectedEOF},
		{"cut in length", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := NewReader(bytes.NewReader(c.in), 64, 0).ReadFrame()
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, KindPing, []byte("x")))
	f.Add([]byte{0, 0, 0, 1})
	f.Add([]byte{255, 255, 255, 255, 0, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 1024, 16)
		for i := 0; i < 1000; i++ {
			k, p, err := r.ReadFrame()
			if err != nil {
				return
			}
			// Re-encoding a frame that was read must give back its bytes.
			again := AppendFrame(nil, k, p)
			if len(again) != HeaderSize+len(p) {
				t.Fatalf("re-encoded length %d", len(again))
			}
		}
	})
}

func BenchmarkAppendMessage(b *testing.B) {
	m := &pb.MemberEvent{Seq: 9, Info: &pb.NodeInfo{Id: make([]byte, 16), Type: 4, Addrs: []string{"127.0.0.1", "127.0.0.1"}, Ports: []int32{7000}}}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var err error
		buf, err = AppendMessage(buf[:0], KindMemberEvent, m)
		if err != nil {
			b.Fatal(err)
		}
	}
}
