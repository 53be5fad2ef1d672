package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xserver/xserver/common/wire"
	"github.com/xserver/xserver/examples/internal/game"
	"github.com/xserver/xserver/login"
)

// ErrConfig is wrapped by every error of Config validation.
var ErrConfig = errors.New("bot: invalid config")

// Config configures Run. Start from DefaultConfig.
type Config struct {
	// LoginURL is the login service's base URL; bots POST to
	// LoginURL/login (a URL already ending in /login is used as is).
	LoginURL  string
	Bots      int           // how many bots (default 10)
	Password  string        // every bot's password
	Prefix    string        // accounts and names are <Prefix>-<i>, i = 1…Bots
	ChatEvery time.Duration // world chat period; 0: never chat
	Queue     bool          // queue for a match once, after entering
	Mode      string        // the queue's game mode
	Ramp      time.Duration // bot starts are spread evenly over Ramp (0: all at once)
	Timeout   time.Duration // bounds a login, a connect, an Enter and each ack (default 10 s)
	PingEvery time.Duration // ClientPing period, against the gateway's idle limit (default 30 s)
	MaxFrame  int           // largest frame accepted from the gateway (default 1 MiB)
	// HTTP posts the logins; nil means a client that keeps up to Bots
	// connections to the login service.
	HTTP *http.Client
	// Now is the clock latencies are measured with (default time.Now).
	Now func() time.Time
}

// DefaultConfig returns the defaults of the examples/bot flags.
func DefaultConfig() Config {
	return Config{
		LoginURL:  "http://127.0.0.1:8080",
		Bots:      10,
		Password:  "xserver",
		Prefix:    "bot",
		ChatEvery: time.Second,
		Queue:     true,
		Mode:      "duel",
		Ramp:      time.Second,
		Timeout:   10 * time.Second,
		PingEvery: 30 * time.Second,
		MaxFrame:  wire.DefaultMaxFrame,
	}
}

// validate fills defaults and rejects what cannot work.
func (c *Config) validate() error {
	d := DefaultConfig()
	if c.Bots < 1 {
		return fmt.Errorf("%w: %d bots", ErrConfig, c.Bots)
	}
	if _, err := LoginEndpoint(c.LoginURL); err != nil {
		return err
	}
	if c.Prefix == "" || strings.ContainsAny(c.Prefix, "{}") || !utf8.ValidString(c.Prefix) {
		return fmt.Errorf("%w: prefix %q: want a non-empty account prefix without braces", ErrConfig, c.Prefix)
	}
	if n := len(Account(c.Prefix, c.Bots)); n > wire.MaxAccount {
		return fmt.Errorf("%w: prefix %q makes %d-byte accounts, over %d", ErrConfig, c.Prefix, n, wire.MaxAccount)
	}
	if c.Password == "" {
		return fmt.Errorf("%w: empty password", ErrConfig)
	}
	if c.ChatEvery < 0 || c.Ramp < 0 || c.Timeout < 0 || c.PingEvery < 0 {
		return fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.PingEvery == 0 {
		c.PingEvery = d.PingEvery
	}
	if c.MaxFrame <= 0 {
		c.MaxFrame = d.MaxFrame
	}
	if c.Mode == "" {
		c.Mode = d.Mode
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, MaxIdleConns: c.Bots, MaxIdleConnsPerHost: c.Bots,
			IdleConnTimeout: 30 * time.Second,
		}}
	}
	return nil
}

// LoginEndpoint returns the POST /login URL for a login service base URL.
// It is pure.
func LoginEndpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%w: login URL %q: want http://host:port", ErrConfig, base)
	}
	if !strings.HasSuffix(u.Path, "/login") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/login"
	}
	return u.String(), nil
}

// Account is the account (and display name) of bot i.
func Account(prefix string, i int) string { return fmt.Sprintf("%s-%d", prefix, i) }

// Run plays cfg.Bots bots until ctx ends, recording into st, and returns
// once every bot has stopped. Bots that cannot log in or enter record the
// failure and stop; the others play on. The only error is a bad Config.
func Run(ctx context.Context, cfg Config, st *Stats) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	endpoint, _ := LoginEndpoint(cfg.LoginURL)
	var wg sync.WaitGroup
	for i := 1; i <= cfg.Bots; i++ {
		delay := cfg.Ramp * time.Duration(i-1) / time.Duration(cfg.Bots)
		b := &bot{cfg: &cfg, st: st, endpoint: endpoint, account: Account(cfg.Prefix, i)}
		wg.Go(func() {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			b.run(ctx)
		})
	}
	wg.Wait()
	cfg.HTTP.CloseIdleConnections()
	return nil
}

// bot is one scripted player. Its fields are owned by the goroutine in
// run; its reader goroutine only reads frames and sends Events.
type bot struct {
	cfg      *Config
	st       *Stats
	endpoint string
	account  string

	conn    net.Conn
	entered bool
	chatSeq int
	// pending holds the send times of requests awaiting their ack, per
	// cmd, oldest first: the lobby answers one account in order.
	pending map[uint64][]time.Time
}

// errStop ends a bot's session; the cause has been recorded.
var errStop = errors.New("bot: stop")

// run plays one bot: login, gateway, enter, then chat until ctx ends.
func (b *bot) run(ctx context.Context) {
	tk, err := b.login(ctx)
	if err != nil {
		b.st.Inc(LoginFailed, 1)
		b.st.Error(ErrLogin, err)
		return
	}
	conn, r, err := b.connect(ctx, tk)
	if err != nil {
		b.st.Inc(LoginFailed, 1)
		return
	}
	b.st.Inc(LoginOK, 1)
	b.conn = conn
	b.pending = make(map[uint64][]time.Time)

	events := make(chan Event, 64)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { readLoop(r, events, readErr, done) })
	defer func() {
		close(done)
		_ = conn.Close() // unblocks the reader
		wg.Wait()
		if b.entered {
			b.st.Online(-1)
		}
	}()

	if err := b.play(ctx, events, readErr); err != nil && !b.entered {
		b.st.Inc(EnterFailed, 1)
	}
}

// login posts the credentials and returns the ticket.
func (b *bot) login(ctx context.Context) (*login.Ticket, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	body, err := json.Marshal(map[string]string{"account": b.account, "password": b.cfg.Password})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.cfg.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.account, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.account, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return nil, fmt.Errorf("%s: %s: %s", b.account, resp.Status, e.Error)
	}
	var tk login.Ticket
	if err := json.Unmarshal(raw, &tk); err != nil {
		return nil, fmt.Errorf("%s: bad ticket: %w", b.account, err)
	}
	if tk.Gateway == "" || tk.Token == "" || tk.Account != b.account {
		return nil, fmt.Errorf("%s: incomplete ticket", b.account)
	}
	return &tk, nil
}

// connect dials the ticket's gateway, logs in and waits for the ack. On
// failure the error has been recorded and nothing is left open.
func (b *bot) connect(ctx context.Context, tk *login.Ticket) (net.Conn, *wire.Reader, error) {
	d := net.Dialer{Timeout: b.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", tk.Gateway)
	if err != nil {
		b.st.Error(ErrDial, fmt.Errorf("%s: %w", b.account, err))
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(b.cfg.Timeout))
	r := wire.NewReader(conn, b.cfg.MaxFrame, 0)
	ev, err := b.handshake(conn, r, tk)
	if err == nil && ev.Kind == EvLoginAck && ev.Code == wire.CodeOK {
		if stop() {
			_ = conn.SetDeadline(time.Time{})
			return conn, r, nil
		}
		err = ctx.Err()
	}
	conn.Close()
	switch {
	case err != nil:
		err = fmt.Errorf("%s: gateway login: %w", b.account, err)
	case ev.Kind == EvKick:
		err = fmt.Errorf("%s: kicked at login: %s (%s)", b.account, wire.CodeText(ev.Code), ev.Text)
	case ev.Kind == EvLoginAck:
		err = fmt.Errorf("%s: login refused: %s (%s)", b.account, wire.CodeText(ev.Code), ev.Text)
	default:
		err = fmt.Errorf("%s: unexpected frame before the login ack", b.account)
	}
	b.st.Error(ErrLoginAck, err)
	return nil, nil, err
}

func (b *bot) handshake(conn net.Conn, r *wire.Reader, tk *login.Ticket) (Event, error) {
	if _, err := conn.Write(wire.AppendLogin(nil, tk.Account, tk.Token)); err != nil {
		return Event{}, err
	}
	k, p, err := r.ReadFrame()
	if err != nil {
		return Event{}, err
	}
	return Decode(k, p)
}

// readLoop turns frames into Events until the connection fails, then
// reports the error. done tells it the owner has stopped listening.
func readLoop(r *wire.Reader, events chan<- Event, readErr chan<- error, done <-chan struct{}) {
	for {
		k, p, err := r.ReadFrame()
		var ev Event
		if err == nil {
			ev, err = Decode(k, p)
		}
		if err != nil {
			readErr <- err // buffered: never blocks
			return
		}
		select {
		case events <- ev:
		case <-done:
			return
		}
	}
}

// play enters the lobby and plays until ctx ends or the session fails. A
// non-nil error means the session ended early; its cause is recorded.
func (b *bot) play(ctx context.Context, events <-chan Event, readErr <-chan error) error {
	if err := b.send(game.CmdEnter, game.Enter{Name: b.account}); err != nil {
		return err
	}
	enterSent := b.cfg.Now()
	enterTimer := time.NewTimer(b.cfg.Timeout)
	defer enterTimer.Stop()
	ping := time.NewTicker(b.cfg.PingEvery)
	defer ping.Stop()
	expire := time.NewTicker(min(b.cfg.Timeout/2, time.Second))
	defer expire.Stop()
	chat := time.NewTicker(time.Hour) // reset to ChatEvery once entered
	chat.Stop()
	defer chat.Stop()
	chatting := false

	for {
		select {
		case <-ctx.Done():
			if !b.entered {
				b.st.Error(ErrEnter, fmt.Errorf("%s: stopped before the lobby answered Enter", b.account))
				return errStop
			}
			return nil
		case err := <-readErr:
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("%s: the gateway closed the connection", b.account)
			}
			b.st.Error(ErrConn, err)
			return errStop
		case ev := <-events:
			if err := b.handle(ev, enterSent); err != nil {
				return err
			}
			if b.entered && !chatting && b.cfg.ChatEvery > 0 {
				chat.Reset(b.cfg.ChatEvery)
				chatting = true
			}
		case <-chat.C:
			b.chatSeq++
			text := fmt.Sprintf("hello from %s #%d", b.account, b.chatSeq)
			if err := b.request(game.CmdWorld, game.WorldChat{Text: text}); err != nil {
				return err
			}
		case <-ping.C:
			var nonce [8]byte
			if err := b.write(wire.AppendFrame(nil, wire.KindClientPing, nonce[:])); err != nil {
				return err
			}
		case <-enterTimer.C:
			if !b.entered {
				b.st.Error(ErrEnter, fmt.Errorf("%s: no EnterReply within %v", b.account, b.cfg.Timeout))
				return errStop
			}
		case <-expire.C:
			b.expire()
		}
	}
}

// handle acts on one event; a non-nil error ends the session.
func (b *bot) handle(ev Event, enterSent time.Time) error {
	switch ev.Kind {
	case EvKick:
		b.st.Error(ErrKicked, fmt.Errorf("%s: %s (%s)", b.account, wire.CodeText(ev.Code), ev.Text))
		return errStop
	case EvNotDelivered:
		b.st.Error(ErrNotDelivered, fmt.Errorf("%s: cmd %d: %s", b.account, ev.Cmd, wire.CodeText(ev.Code)))
		if ev.Cmd == game.CmdEnter && !b.entered {
			return errStop
		}
		b.pop(ev.Cmd)
		return nil
	case EvData:
	default:
		return nil // pong, a late ack, kinds from the future
	}
	b.st.Inc(Received, 1)
	switch ev.Cmd {
	case game.CmdEnter:
		if b.entered {
			return nil
		}
		var rep game.EnterReply
		if err := game.Decode(ev.Data, &rep); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: EnterReply: %w", b.account, err))
			return errStop
		}
		b.st.Observe(LatencyEnter, b.cfg.Now().Sub(enterSent))
		if !rep.OK {
			b.st.Error(ErrEnter, fmt.Errorf("%s: lobby refused: %s", b.account, rep.Error))
			return errStop
		}
		b.entered = true
		b.st.Inc(EnterOK, 1)
		b.st.Online(1)
		if b.cfg.Queue {
			return b.request(game.CmdQueue, game.Queue{Mode: b.cfg.Mode})
		}
	case game.CmdWorld, game.CmdQueue:
		var ack game.Ack
		if err := game.Decode(ev.Data, &ack); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: Ack for cmd %d: %w", b.account, ev.Cmd, err))
			return nil
		}
		sent, ok := b.pop(ev.Cmd)
		if ok && ev.Cmd == game.CmdWorld {
			b.st.Observe(LatencyChat, b.cfg.Now().Sub(sent))
		}
		if !ack.OK {
			b.st.Error(ErrRefused, fmt.Errorf("%s: cmd %d: %s", b.account, ev.Cmd, ack.Error))
		}
	case game.PushWorld:
		var line game.ChatLine
		if err := game.Decode(ev.Data, &line); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: ChatLine: %w", b.account, err))
			return nil
		}
		b.st.Inc(ChatSeen, 1)
	case game.PushMatched:
		var m game.Matched
		if err := game.Decode(ev.Data, &m); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: Matched: %w", b.account, err))
			return nil
		}
		b.st.Inc(Matches, 1)
	}
	return nil
}

// request sends a request whose ack is awaited.
func (b *bot) request(cmd uint64, body any) error {
	if err := b.send(cmd, body); err != nil {
		return err
	}
	b.pending[cmd] = append(b.pending[cmd], b.cfg.Now())
	return nil
}

// pop removes the oldest pending request of cmd.
func (b *bot) pop(cmd uint64) (time.Time, bool) {
	q := b.pending[cmd]
	if len(q) == 0 {
		return time.Time{}, false
	}
	b.pending[cmd] = q[1:]
	return q[0], true
}

// expire counts and forgets requests unanswered for longer than Timeout.
func (b *bot) expire() {
	cutoff := b.cfg.Now().Add(-b.cfg.Timeout)
	for cmd, q := range b.pending {
		for len(q) > 0 && q[0].Before(cutoff) {
			b.st.Error(ErrNoReply, fmt.Errorf("%s: no ack for cmd %d within %v", b.account, cmd, b.cfg.Timeout))
			q = q[1:]
		}
		b.pending[cmd] = q
	}
}

// send encodes body and writes one data frame.
func (b *bot) send(cmd uint64, body any) error {
	data, err := game.Encode(body)
	if err != nil {
		b.st.Error(ErrProtocol, err)
		return errStop
	}
	if err := b.write(wire.AppendData(nil, cmd, data)); err != nil {
		return err
	}
	b.st.Inc(Sent, 1)
	return nil
}

// write writes one frame within Timeout.
func (b *bot) write(frame []byte) error {
	_ = b.conn.SetWriteDeadline(time.Now().Add(b.cfg.Timeout))
	if _, err := b.conn.Write(frame); err != nil {
		b.st.Error(ErrConn, fmt.Errorf("%s: write: %w", b.account, err))
		return errStop
	}
	return nil
}
