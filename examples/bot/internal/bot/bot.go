package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/xserver/xserver/client"
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
	PingEvery time.Duration // ClientPing period; a connection silent for 3 periods is lost (default 5 s)
	MaxFrame  int           // largest frame accepted from the gateway (default 1 MiB)
	// DropEvery makes every bot cut its own connection abruptly, with no
	// goodbye, at random around every DropEvery (±50 %); the session
	// resumes. 0: never.
	DropEvery time.Duration
	NoResume  bool // log in with protocol version 1 (no resume)
	// KeepSessions leaves each session for its resume window when the run
	// ends, instead of logging out (its nodes then see lose-account only
	// when the window passes).
	KeepSessions bool
	WebSocket    bool  // connect over WebSocket instead of TCP
	Seed         int64 // randomness of the drops and the backoff
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
		PingEvery: 5 * time.Second,
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
	if c.ChatEvery < 0 || c.Ramp < 0 || c.Timeout < 0 || c.PingEvery < 0 || c.DropEvery < 0 {
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
		b := &bot{cfg: &cfg, st: st, endpoint: endpoint, account: Account(cfg.Prefix, i),
			rnd: rand.New(rand.NewSource(int64(i) ^ cfg.Seed))}
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
// run.
type bot struct {
	cfg      *Config
	st       *Stats
	endpoint string
	account  string
	rnd      *rand.Rand

	c       *client.Client
	session int // sessions logged in so far (1 for the first)
	entered bool
	chatSeq int // world lines sent in this session
	// pending holds the send times of requests awaiting their ack, per
	// cmd, oldest first: the lobby answers one account in order.
	pending map[uint64][]time.Time
	// End-to-end accounting of this session: the acks and the echoes of
	// this bot's own world lines, and the last line seen from every other
	// bot (by its session and line number).
	acked   int
	echoed  int
	refused map[int]bool // own lines the lobby refused (no echo will come)
	others  map[string]lineID
	// worldLost counts the session's missing world lines; gap is set when
	// the client was told broadcasts may be missing (countWorldLost).
	worldLost uint64
	gap       bool
}

// lineID identifies a world line: its sender's session and line number.
type lineID struct{ session, seq int }

// errStop ends a bot's session; the cause has been recorded.
var errStop = errors.New("bot: stop")

// errRelogin ends a session the gateway ended (its resume window passed,
// or it lost messages): the bot logs in again.
var errRelogin = errors.New("bot: log in again")

// run plays one bot: login, gateway, enter, then chat until ctx ends,
// logging in again when the session ends under it.
func (b *bot) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := b.play(ctx)
		if b.entered {
			b.st.Online(-1)
		}
		if !errors.Is(err, errRelogin) {
			return
		}
		b.st.Inc(Relogins, 1)
	}
}

// play runs one session.
func (b *bot) play(ctx context.Context) error {
	tk, err := b.login(ctx)
	if err != nil {
		b.st.Inc(LoginFailed, 1)
		b.st.Error(ErrLogin, err)
		return errStop
	}
	cfg := client.Config{Account: tk.Account, Token: tk.Token, Addr: tk.Gateway, NoResume: b.cfg.NoResume,
		Gateway: b.gatewayFor, PingEvery: b.cfg.PingEvery, DialTimeout: b.cfg.Timeout, MaxFrame: b.cfg.MaxFrame,
		Rand: rand.New(rand.NewSource(b.rnd.Int63()))}
	if b.cfg.WebSocket {
		if tk.WebSocket == "" {
			b.st.Inc(LoginFailed, 1)
			b.st.Error(ErrDial, fmt.Errorf("%s: the gateway has no WebSocket listener", b.account))
			return errStop
		}
		cfg.Addr = "ws://" + tk.WebSocket + "/ws"
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		b.st.Inc(LoginFailed, 1)
		kind := ErrDial
		var ke *client.KickError
		if errors.As(err, &ke) {
			kind = ErrLoginAck
		}
		b.st.Error(kind, fmt.Errorf("%s: %w", b.account, err))
		return errStop
	}
	b.st.Inc(LoginOK, 1)
	b.c = c
	b.session++
	b.entered, b.chatSeq, b.acked, b.echoed = false, 0, 0, 0
	b.worldLost, b.gap = 0, false
	b.pending = make(map[uint64][]time.Time)
	b.others = make(map[string]lineID)
	b.refused = make(map[int]bool)
	defer func() {
		if b.cfg.KeepSessions {
			c.Abandon()
		} else {
			c.Close()
		}
	}()
	err = b.loop(ctx)
	switch {
	case err == nil:
		b.settle()
	case !b.entered:
		b.st.Inc(EnterFailed, 1)
	}
	b.countWorldLost()
	return err
}

// gatewayFor asks the login service for a gateway to resume at.
func (b *bot) gatewayFor(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(b.endpoint, "/login") + "/gateway"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := b.cfg.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var a login.GatewayAddr
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&a) != nil {
		return "", fmt.Errorf("%s: no gateway from the login service (%s)", b.account, resp.Status)
	}
	if b.cfg.WebSocket {
		return "ws://" + a.WebSocket + "/ws", nil
	}
	return a.Gateway, nil
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

// loop enters the lobby and plays until ctx ends or the session ends. A
// nil error means ctx ended with the session alive.
func (b *bot) loop(ctx context.Context) error {
	c := b.c
	if err := b.send(ctx, game.CmdEnter, game.Enter{Name: b.account}); err != nil {
		return err
	}
	enterSent := b.cfg.Now()
	enterTimer := time.NewTimer(b.cfg.Timeout)
	defer enterTimer.Stop()
	expire := time.NewTicker(min(b.cfg.Timeout/2, time.Second))
	defer expire.Stop()
	chat := time.NewTicker(time.Hour) // reset to ChatEvery once entered
	chat.Stop()
	defer chat.Stop()
	chatting := false
	drop := time.NewTimer(time.Hour)
	drop.Stop()
	defer drop.Stop()
	if b.cfg.DropEvery > 0 {
		drop.Reset(b.dropDelay())
	}
	for {
		select {
		case <-ctx.Done():
			if !b.entered {
				b.st.Error(ErrEnter, fmt.Errorf("%s: stopped before the lobby answered Enter", b.account))
				return errStop
			}
			return nil
		case ev, ok := <-c.Events():
			if !ok {
				return b.ended(c.Err())
			}
			switch ev.Kind {
			case client.EvResumed:
				b.st.Inc(Resumed, 1)
				b.st.Observe(LatencyAway, ev.Away)
				b.gap = b.gap || ev.BroadcastGap
			case client.EvShed:
				b.gap = true
			case client.EvNotDelivered:
				b.st.Error(ErrNotDelivered, fmt.Errorf("%s: cmd %d: %s", b.account, ev.Cmd, wire.CodeText(ev.Code)))
				if ev.Cmd == game.CmdEnter && !b.entered {
					return errStop
				}
				b.pop(ev.Cmd)
			case client.EvEnded:
				return b.ended(ev.Err)
			}
		case m := <-c.Messages():
			if err := b.handle(ctx, m, enterSent); err != nil {
				return err
			}
			if b.entered && !chatting && b.cfg.ChatEvery > 0 {
				chat.Reset(b.cfg.ChatEvery)
				chatting = true
			}
		case <-chat.C:
			b.chatSeq++
			text := fmt.Sprintf("hello from %s #%d.%d", b.account, b.session, b.chatSeq)
			if err := b.request(ctx, game.CmdWorld, game.WorldChat{Text: text}); err != nil {
				return err
			}
		case <-drop.C:
			c.Drop()
			b.st.Inc(Drops, 1)
			drop.Reset(b.dropDelay())
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

// dropDelay is a random delay around DropEvery (±50 %).
func (b *bot) dropDelay() time.Duration {
	d := b.cfg.DropEvery
	return d/2 + time.Duration(b.rnd.Int63n(int64(d)+1))
}

// ended records why the session ended: a session the gateway could not
// keep (expired, lost messages) means a new login; anything else stops.
func (b *bot) ended(err error) error {
	var ke *client.KickError
	if errors.As(err, &ke) {
		b.st.Error(ErrKicked, fmt.Errorf("%s: %s (%s)", b.account, wire.CodeText(ke.Code), ke.Reason))
		switch ke.Code {
		case wire.CodeExpired, wire.CodeLost, wire.CodeShutdown, wire.CodeKicked:
			return errRelogin
		}
		return errStop
	}
	if errors.Is(err, client.ErrClosed) {
		return errStop
	}
	b.st.Error(ErrConn, fmt.Errorf("%s: %v", b.account, err))
	return errRelogin
}

// settle waits for the acks and echoes of lines still in flight when the
// run ends, then counts what never came as lost. It waits as long as they
// keep coming (a loaded machine delivers late, not never), and gives up
// after max(Timeout, 5 s) without one, or four times that in all.
func (b *bot) settle() {
	quiet := max(b.cfg.Timeout, 5*time.Second)
	stall := time.NewTimer(quiet)
	defer stall.Stop()
	limit := time.NewTimer(4 * quiet)
	defer limit.Stop()
	for b.acked < b.chatSeq || b.echoed+b.refusedAfter(b.echoed) < b.chatSeq {
		select {
		case m := <-b.c.Messages():
			before := b.acked + b.echoed
			_ = b.handle(context.Background(), m, time.Time{})
			if b.acked+b.echoed != before {
				stall.Reset(quiet)
			}
			continue
		case <-stall.C:
		case <-limit.C:
		}
		b.st.Inc(Lost, uint64(b.chatSeq-b.acked)) // acks: per-account messages
		b.worldLost += uint64(b.chatSeq - b.echoed - b.refusedAfter(b.echoed))
		return
	}
}

// countWorldLost counts the session's missing world lines: lost, unless
// its client was told broadcasts may be missing (world lines are group
// broadcasts: exactly once across lost connections on one gateway, but
// after a resume on another gateway or a shed notice the client is told
// some may be gone).
func (b *bot) countWorldLost() {
	if b.gap {
		b.st.Inc(Gapped, b.worldLost)
	} else {
		b.st.Inc(Lost, b.worldLost)
	}
	b.worldLost = 0
}

// refusedAfter counts own lines after seq the lobby refused.
func (b *bot) refusedAfter(seq int) int {
	n := 0
	for k := range b.refused {
		if k > seq {
			n++
		}
	}
	return n
}

// handle acts on one message; a non-nil error ends the session.
func (b *bot) handle(ctx context.Context, m xmsg, enterSent time.Time) error {
	b.st.Inc(Received, 1)
	switch m.Cmd {
	case game.CmdEnter:
		if b.entered {
			return nil
		}
		var rep game.EnterReply
		if err := game.Decode(m.Data, &rep); err != nil {
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
			return b.request(ctx, game.CmdQueue, game.Queue{Mode: b.cfg.Mode})
		}
	case game.CmdWorld, game.CmdQueue:
		var ack game.Ack
		if err := game.Decode(m.Data, &ack); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: Ack for cmd %d: %w", b.account, m.Cmd, err))
			return nil
		}
		sent, ok := b.pop(m.Cmd)
		if m.Cmd == game.CmdWorld {
			b.acked++
			if b.acked > b.chatSeq {
				b.st.Inc(Duplicated, 1)
				b.st.Error(ErrDuplicate, fmt.Errorf("%s: chat ack %d for %d lines sent", b.account, b.acked, b.chatSeq))
			}
			if ok {
				b.st.Observe(LatencyChat, b.cfg.Now().Sub(sent))
			}
			if !ack.OK {
				b.refused[b.acked] = true // answered, but no echo will come
			}
		}
		if !ack.OK {
			b.st.Error(ErrRefused, fmt.Errorf("%s: cmd %d: %s", b.account, m.Cmd, ack.Error))
			if ack.Error == "enter first" {
				// The player was rebound to another lobby (its own became
				// unreachable): enter again, as the lobby's doc says.
				return b.send(ctx, game.CmdEnter, game.Enter{Name: b.account})
			}
		}
	case game.PushWorld:
		var line game.ChatLine
		if err := game.Decode(m.Data, &line); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: ChatLine: %w", b.account, err))
			return nil
		}
		b.st.Inc(ChatSeen, 1)
		b.countLine(line)
	case game.PushMatched:
		var mt game.Matched
		if err := game.Decode(m.Data, &mt); err != nil {
			b.st.Error(ErrProtocol, fmt.Errorf("%s: Matched: %w", b.account, err))
			return nil
		}
		b.st.Inc(Matches, 1)
	}
	return nil
}

// countLine checks a world line's number against the last one seen from
// its sender in the same session of the sender: a gap is lost lines, a
// repeat a duplicate. Lines of this bot are checked against what it sent.
func (b *bot) countLine(line game.ChatLine) {
	var sess, seq int
	if _, err := fmt.Sscanf(line.Text[strings.LastIndex(line.Text, "#")+1:], "%d.%d", &sess, &seq); err != nil {
		return // not a bot's line
	}
	if line.From == b.account {
		if sess != b.session {
			return
		}
		if seq <= b.echoed {
			b.st.Inc(Duplicated, 1)
			b.st.Error(ErrDuplicate, fmt.Errorf("%s: own line %d.%d again (echoed up to %d)", b.account, sess, seq, b.echoed))
			return
		}
		for k := b.echoed + 1; k < seq; k++ {
			if !b.refused[k] {
				b.worldLost++
			}
		}
		b.echoed = seq
		return
	}
	last, seen := b.others[line.From]
	switch {
	case !seen || last.session != sess:
		// First line of that sender's session since this bot entered.
	case seq <= last.seq:
		b.st.Inc(Duplicated, 1)
		b.st.Error(ErrDuplicate, fmt.Errorf("%s: line %d.%d of %s again (seen up to %d)", b.account, sess, seq, line.From, last.seq))
		return
	case seq > last.seq+1:
		b.worldLost += uint64(seq - last.seq - 1)
	}
	b.others[line.From] = lineID{session: sess, seq: seq}
}

// request sends a request whose ack is awaited.
func (b *bot) request(ctx context.Context, cmd uint64, body any) error {
	if err := b.send(ctx, cmd, body); err != nil {
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

// send encodes body and queues one message.
func (b *bot) send(ctx context.Context, cmd uint64, body any) error {
	data, err := game.Encode(body)
	if err != nil {
		b.st.Error(ErrProtocol, err)
		return errStop
	}
	sctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	if err := b.c.Send(sctx, cmd, data); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return b.ended(err)
	}
	b.st.Inc(Sent, 1)
	return nil
}

type xmsg = client.Message
