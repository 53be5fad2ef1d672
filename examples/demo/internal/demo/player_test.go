package demo

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/login"
)

const testToken = "tok-secret-0123456789"

// fakeGateway accepts one client, checks its login and answers its data
// frame with answer(cmd, data).
func fakeGateway(t *testing.T, answer func(cmd uint64, data []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := wire.NewReader(c, 0, 0)
		k, p, err := r.ReadFrame()
		if err != nil || k != wire.KindClientLogin {
			return
		}
		lg, err := wire.DecodeLogin(p)
		if err != nil || lg.Token != testToken {
			_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeBadToken, "bad token"))
			return
		}
		_, _ = c.Write(wire.AppendCoded(nil, wire.KindClientLoginAck, wire.CodeOK, "ok"))
		k, p, err = r.ReadFrame()
		if err != nil || k != wire.KindClientData {
			return
		}
		cmd, data, _ := wire.DecodeData(p)
		_, _ = c.Write(answer(cmd, data))
	}()
	return ln.Addr().String()
}

// fakeLogin answers POST /login with status and, for 200, a ticket for
// the gateway at gw bound to node.
func fakeLogin(t *testing.T, status int, gw string, node common.NodeID) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Account, Password string }
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil || req.Password != "pw" {
			http.Error(w, `{"error": "bad request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if status != http.StatusOK {
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no game server available; try again later"})
			return
		}
		_ = json.NewEncoder(w).Encode(login.Ticket{
			Account: req.Account, Gateway: gw, GatewayID: common.NewNodeID(), Token: testToken,
			Bindings: map[common.NodeType]common.NodeID{4: node},
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/login"
}

func TestPlayerRoundTrip(t *testing.T) {
	node := common.NewNodeID()
	echo := func(cmd uint64, data []byte) []byte { return wire.AppendData(nil, cmd, data) }
	tests := []struct {
		name    string
		status  int
		answer  func(uint64, []byte) []byte
		wantErr string
	}{
		{"echo", 200, echo, ""},
		{"login refused", 503, echo, "503 Service Unavailable: no game server available"},
		{"no node", 200, func(cmd uint64, _ []byte) []byte { return wire.AppendClientError(nil, wire.CodeNoNode, cmd) }, "no node available"},
		{"kicked", 200, func(uint64, []byte) []byte {
			return wire.AppendCoded(nil, wire.KindClientKick, wire.CodeShutdown, "bye")
		}, "gateway shutting down"},
		{"wrong cmd", 200, func(_ uint64, data []byte) []byte { return wire.AppendData(nil, 5001, data) }, "got cmd 5001"},
		{"wrong payload", 200, func(cmd uint64, _ []byte) []byte { return wire.AppendData(nil, cmd, []byte("bye")) }, `got cmd 4001 "bye"`},
		{"gateway hangs up", 200, func(uint64, []byte) []byte { return nil }, "waiting for the echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := fakeGateway(t, tt.answer)
			p := &Player{
				Account: "demo-1", Password: "pw", LoginURL: fakeLogin(t, tt.status, gw, node),
				Cmd: 4001, CmdOffset: 1000, Payload: []byte("hello"),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			trip, err := p.RoundTrip(ctx)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if trip.Gateway != gw || trip.Type != 4 || trip.Node != node || trip.RTT <= 0 {
					t.Errorf("trip %+v", trip)
				}
				return
			}
			if !errors.Is(err, ErrPlayer) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want ErrPlayer mentioning %q", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Error("the error holds the token")
			}
		})
	}
}

// TestPlayerHonoursContext: a gateway that never answers does not hold the
// player past its context.
func TestPlayerHonoursContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			<-hold
		}
	}()
	p := &Player{Account: "demo-1", Password: "pw", LoginURL: fakeLogin(t, 200, ln.Addr().String(), common.NodeID{}),
		Cmd: 4001, CmdOffset: 1000, Payload: []byte("hello")}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.RoundTrip(ctx); !errors.Is(err, ErrPlayer) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("RoundTrip took %v after its context ended", d)
	}
}
