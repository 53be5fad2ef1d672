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
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/login"
)

// ErrPlayer is wrapped by every error of a Player.
var ErrPlayer = errors.New("demo: player")

// Player is one scripted player of the example game speaking the public
// protocols: it logs in over HTTP at the login service, connects to the
// gateway its ticket names over TCP and exchanges the game's JSON
// messages there. Set the exported fields, then Connect. A Player is
// used by one goroutine at a time; every blocking call is bounded by its
// ctx. The login token is never part of an error.
type Player struct {
	Account  string
	Password string
	Name     string       // shown to other players (game.Enter)
	LoginURL string       // the login service's POST /login URL
	HTTP     *http.Client // nil: http.DefaultClient
	MaxFrame int          // largest frame read from the gateway (0: wire's default)

	ticket *login.Ticket // set by Connect
	conn   net.Conn      // nil until Connect
	r      *wire.Reader
}

// Connect logs in at the login service, dials the gateway of the ticket
// and logs in there. On failure nothing is left open.
func (p *Player) Connect(ctx context.Context) error {
	tk, err := p.login(ctx)
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", tk.Gateway)
	if err != nil {
		return fmt.Errorf("%w: %s: gateway: %w", ErrPlayer, p.Account, err)
	}
	p.ticket, p.conn, p.r = tk, conn, wire.NewReader(conn, p.MaxFrame, 0)
	if err := p.gatewayLogin(ctx); err != nil {
		p.Close()
		return err
	}
	return nil
}

// gatewayLogin presents the ticket to the gateway and reads its answer.
func (p *Player) gatewayLogin(ctx context.Context) error {
	stop := p.bound(ctx)
	defer stop()
	if _, err := p.conn.Write(wire.AppendLogin(nil, p.ticket.Account, p.ticket.Token)); err != nil {
		return fmt.Errorf("%w: %s: gateway login: %w", ErrPlayer, p.Account, err)
	}
	k, payload, err := p.r.ReadFrame()
	if err != nil {
		return fmt.Errorf("%w: %s: gateway login: %w", ErrPlayer, p.Account, err)
	}
	if code, text, err := wire.DecodeCoded(payload); k != wire.KindClientLoginAck || err != nil || code != wire.CodeOK {
		return fmt.Errorf("%w: %s: gateway login: %s %q (code %d)", ErrPlayer, p.Account, k, text, code)
	}
	return nil
}

// bound makes ctx's end interrupt the connection's IO; call the result
// when the operation is over.
func (p *Player) bound(ctx context.Context) func() bool {
	_ = p.conn.SetDeadline(time.Time{})
	return context.AfterFunc(ctx, func() { _ = p.conn.SetDeadline(time.Now()) })
}

// Gateway is the gateway address of the ticket ("" before Connect).
func (p *Player) Gateway() string {
	if p.ticket == nil {
		return ""
	}
	return p.ticket.Gateway
}

// Lobby is the lobby instance the login service bound the account to
// (zero before Connect).
func (p *Player) Lobby() common.NodeID {
	if p.ticket == nil {
		return common.NodeID{}
	}
	return p.ticket.Bindings[game.LobbyType]
}

// Close closes the gateway connection, if any. Safe twice.
func (p *Player) Close() {
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn, p.r = nil, nil
	}
}

// Send sends one client message with a JSON body.
func (p *Player) Send(ctx context.Context, cmd uint64, body any) error {
	if p.conn == nil {
		return fmt.Errorf("%w: %s: not connected", ErrPlayer, p.Account)
	}
	b, err := game.Encode(body)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrPlayer, err)
	}
	stop := p.bound(ctx)
	defer stop()
	if _, err := p.conn.Write(wire.AppendData(nil, cmd, b)); err != nil {
		return fmt.Errorf("%w: %s: send cmd %d: %w", ErrPlayer, p.Account, cmd, err)
	}
	return nil
}

// Await reads p's frames until a message with cmd whose JSON body
// decodes into a T that match accepts (nil: any); other messages (pushes)
// are skipped. A ClientError for cmd, a kick or a broken connection ends
// it with an error.
func Await[T any](ctx context.Context, p *Player, cmd uint64, match func(T) bool) (T, error) {
	var zero T
	if p.conn == nil {
		return zero, fmt.Errorf("%w: %s: not connected", ErrPlayer, p.Account)
	}
	stop := p.bound(ctx)
	defer stop()
	for {
		k, payload, err := p.r.ReadFrame()
		if err != nil {
			return zero, fmt.Errorf("%w: %s: waiting for cmd %d: %w", ErrPlayer, p.Account, cmd, err)
		}
		switch k {
		case wire.KindClientData:
			got, data, err := wire.DecodeData(payload)
			if err != nil {
				return zero, fmt.Errorf("%w: %s: %w", ErrPlayer, p.Account, err)
			}
			if got != cmd {
				continue
			}
			var v T
			if err := game.Decode(data, &v); err != nil {
				return zero, fmt.Errorf("%w: %s: cmd %d: %w", ErrPlayer, p.Account, cmd, err)
			}
			if match == nil || match(v) {
				return v, nil
			}
		case wire.KindClientError:
			code, failed := clientError(payload)
			return zero, fmt.Errorf("%w: %s: the gateway could not deliver cmd %d: %s", ErrPlayer, p.Account, failed, wire.CodeText(code))
		case wire.KindClientKick:
			code, text, _ := wire.DecodeCoded(payload)
			return zero, fmt.Errorf("%w: %s: kicked: %s (%s)", ErrPlayer, p.Account, wire.CodeText(code), text)
		case wire.KindClientPong:
		default:
			return zero, fmt.Errorf("%w: %s: unexpected %s frame", ErrPlayer, p.Account, k)
		}
	}
}

// Enter enters the lobby and returns its welcome, which must be ok.
func (p *Player) Enter(ctx context.Context) (game.EnterReply, error) {
	if err := p.Send(ctx, game.CmdEnter, game.Enter{Name: p.Name}); err != nil {
		return game.EnterReply{}, err
	}
	r, err := Await[game.EnterReply](ctx, p, game.CmdEnter, nil)
	if err != nil {
		return r, err
	}
	if !r.OK {
		return r, fmt.Errorf("%w: %s: the lobby refused to let in: %s", ErrPlayer, p.Account, r.Error)
	}
	return r, nil
}

// request sends body with cmd and awaits an ok Ack.
func (p *Player) request(ctx context.Context, cmd uint64, body any) error {
	if err := p.Send(ctx, cmd, body); err != nil {
		return err
	}
	ack, err := Await[game.Ack](ctx, p, cmd, nil)
	if err != nil {
		return err
	}
	if !ack.OK {
		return fmt.Errorf("%w: %s: cmd %d refused: %s", ErrPlayer, p.Account, cmd, ack.Error)
	}
	return nil
}

// Chat is one world chat line that made it from one player to another.
type Chat struct {
	Line    game.ChatLine // as the listener received it
	Latency time.Duration // from sending it to the listener reading it
}

// RoundTrip is the demo's proof that the game works end to end: speaker
// and listener connect and enter their lobbies, the speaker says text in
// the world chat, and the listener must hear it (through the lobbies and,
// when they are bound to different ones, a node-to-node relay).
func RoundTrip(ctx context.Context, speaker, listener *Player, text string) (Chat, error) {
	for _, p := range []*Player{speaker, listener} {
		if err := p.Connect(ctx); err != nil {
			return Chat{}, err
		}
		if _, err := p.Enter(ctx); err != nil {
			return Chat{}, err
		}
	}
	start := time.Now()
	if err := speaker.request(ctx, game.CmdWorld, game.WorldChat{Text: text}); err != nil {
		return Chat{}, err
	}
	heard := func(l game.ChatLine) bool { return l.From == speaker.Account && l.Text == text }
	line, err := Await(ctx, listener, game.PushWorld, heard)
	if err != nil {
		return Chat{}, err
	}
	return Chat{Line: line, Latency: time.Since(start)}, nil
}

// Queue queues the player for a match in mode; it returns once the
// lobby has accepted the ticket.
func (p *Player) Queue(ctx context.Context, mode string) error {
	return p.request(ctx, game.CmdQueue, game.Queue{Mode: mode})
}

// Matched awaits the lobby's news of a match.
func (p *Player) Matched(ctx context.Context) (game.Matched, error) {
	return Await[game.Matched](ctx, p, game.PushMatched, nil)
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
		return nil, fmt.Errorf("%w: %s: login: %w", ErrPlayer, p.Account, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: login: %w", ErrPlayer, p.Account, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return nil, fmt.Errorf("%w: %s: login: %s: %s", ErrPlayer, p.Account, resp.Status, strings.TrimSpace(e.Error))
	}
	var tk login.Ticket
	if err := json.Unmarshal(b, &tk); err != nil {
		return nil, fmt.Errorf("%w: %s: login: bad ticket: %w", ErrPlayer, p.Account, err)
	}
	if tk.Gateway == "" || tk.Token == "" || tk.Account != p.Account {
		return nil, fmt.Errorf("%w: login: incomplete ticket for %q", ErrPlayer, tk.Account)
	}
	return &tk, nil
}
