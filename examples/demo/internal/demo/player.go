package demo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/login"
)

// ErrPlayer is wrapped by every error of Player.RoundTrip.
var ErrPlayer = errors.New("demo: player")

// Player is one scripted player speaking the public protocols: it logs in
// over HTTP, connects to the gateway its ticket names over TCP, sends one
// data frame and waits for the echo. Its fields are read-only once
// RoundTrip runs, so one Player may be used from several goroutines.
type Player struct {
	Account   string
	Password  string
	LoginURL  string       // the login service's POST /login URL
	HTTP      *http.Client // nil: http.DefaultClient
	Cmd       uint64       // the data frame's cmd; its type is Cmd / CmdOffset
	CmdOffset uint64       // the gateways' -cmd-offset
	Payload   []byte
	MaxFrame  int // largest frame read from the gateway (0: wire's default)
}

// Trip is one completed round trip.
type Trip struct {
	Gateway string          // the gateway's client address
	Type    common.NodeType // the node type Cmd names
	// Node is the instance of Type the ticket bound the account to, which
	// the gateway routed to; zero for a stateless type.
	Node common.NodeID
	RTT  time.Duration // from writing the frame to reading the echo
}

// RoundTrip logs in, sends Payload with Cmd and checks that the same cmd
// and payload come back. ctx bounds it all. The login token is never part
// of an error.
func (p *Player) RoundTrip(ctx context.Context) (Trip, error) {
	if p.CmdOffset == 0 {
		return Trip{}, fmt.Errorf("%w: CmdOffset is 0", ErrPlayer)
	}
	tk, err := p.login(ctx)
	if err != nil {
		return Trip{}, err
	}
	typ := common.NodeType(p.Cmd / p.CmdOffset)
	trip := Trip{Gateway: tk.Gateway, Type: typ, Node: tk.Bindings[typ]}

	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", tk.Gateway)
	if err != nil {
		return Trip{}, fmt.Errorf("%w: gateway: %w", ErrPlayer, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	r := wire.NewReader(conn, p.MaxFrame, 0)

	if _, err := conn.Write(wire.AppendLogin(nil, tk.Account, tk.Token)); err != nil {
		return Trip{}, fmt.Errorf("%w: gateway login: %w", ErrPlayer, err)
	}
	k, payload, err := r.ReadFrame()
	if err != nil {
		return Trip{}, fmt.Errorf("%w: gateway login: %w", ErrPlayer, err)
	}
	if code, text, err := wire.DecodeCoded(payload); k != wire.KindClientLoginAck || err != nil || code != wire.CodeOK {
		return Trip{}, fmt.Errorf("%w: gateway login: %s %q (code %d)", ErrPlayer, k, text, code)
	}

	start := time.Now()
	if _, err := conn.Write(wire.AppendData(nil, p.Cmd, p.Payload)); err != nil {
		return Trip{}, fmt.Errorf("%w: send: %w", ErrPlayer, err)
	}
	for {
		k, payload, err := r.ReadFrame()
		if err != nil {
			return Trip{}, fmt.Errorf("%w: waiting for the echo: %w", ErrPlayer, err)
		}
		switch k {
		case wire.KindClientData:
			cmd, data, err := wire.DecodeData(payload)
			if err != nil {
				return Trip{}, fmt.Errorf("%w: %w", ErrPlayer, err)
			}
			if cmd != p.Cmd || !bytes.Equal(data, p.Payload) {
				return Trip{}, fmt.Errorf("%w: sent cmd %d %q, got cmd %d %q", ErrPlayer, p.Cmd, p.Payload, cmd, data)
			}
			trip.RTT = time.Since(start)
			return trip, nil
		case wire.KindClientError:
			code, cmd := clientError(payload)
			return Trip{}, fmt.Errorf("%w: gateway could not deliver cmd %d: %s", ErrPlayer, cmd, wire.CodeText(code))
		case wire.KindClientKick:
			code, text, _ := wire.DecodeCoded(payload)
			return Trip{}, fmt.Errorf("%w: kicked: %s (%s)", ErrPlayer, wire.CodeText(code), text)
		case wire.KindClientPong:
		default:
			return Trip{}, fmt.Errorf("%w: unexpected %s frame", ErrPlayer, k)
		}
	}
}

// clientError decodes a client error payload (u16 code, u64 cmd; there
// is no wire decoder for it). A malformed one reads as code 0.
func clientError(p []byte) (uint16, uint64) {
	if len(p) != 10 {
		return 0, 0
	}
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint64(p[2:])
}

// login posts the credentials and decodes the ticket.
func (p *Player) login(ctx context.Context) (*login.Ticket, error) {
	body, err := json.Marshal(map[string]string{"account": p.Account, "password": p.Password})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlayer, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.LoginURL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPlayer, err)
	}
	req.Header.Set("Content-Type", "application/json")
	c := p.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: login: %w", ErrPlayer, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%w: login: %w", ErrPlayer, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return nil, fmt.Errorf("%w: login: %s: %s", ErrPlayer, resp.Status, strings.TrimSpace(e.Error))
	}
	var tk login.Ticket
	if err := json.Unmarshal(b, &tk); err != nil {
		return nil, fmt.Errorf("%w: login: bad ticket: %w", ErrPlayer, err)
	}
	if tk.Gateway == "" || tk.Token == "" || tk.Account != p.Account {
		return nil, fmt.Errorf("%w: login: incomplete ticket for %q", ErrPlayer, tk.Account)
	}
	return &tk, nil
}
