package demo

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/xserver/xserver/client"
	"github.com/xserver/xserver/examples/internal/game"
)

// Resume is what the resume demonstration saw.
type Resume struct {
	Account  string
	Away     time.Duration // from the cut to the session resumed
	Replayed int           // messages pushed while the player was away, delivered after the resume
	Resent   int           // messages the player sent while away, sent again by its client
}

// ResumeDemo shows a session outliving its connection: a third player
// logs in with a resumable session and enters; its connection is cut
// abruptly; while it is away, speaker says a line in the world chat and
// the player says one too; the player's client resumes on its own, and
// both lines arrive exactly once.
func ResumeDemo(ctx context.Context, speaker *Player, account, loginURL string, hc *http.Client) (Resume, error) {
	res := Resume{Account: account}
	p := &Player{Account: account, Password: speaker.Password, Name: "Demo Three", LoginURL: loginURL, HTTP: hc}
	tk, err := p.login(ctx)
	if err != nil {
		return res, err
	}
	c, err := client.Dial(ctx, client.Config{Account: tk.Account, Token: tk.Token, Addr: tk.Gateway,
		BackoffMin: 150 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		return res, fmt.Errorf("%w: %s: %w", ErrPlayer, account, err)
	}
	defer c.Close()
	send := func(cmd uint64, body any) error {
		b, err := game.Encode(body)
		if err != nil {
			return err
		}
		return c.Send(ctx, cmd, b)
	}
	if err := send(game.CmdEnter, game.Enter{Name: p.Name}); err != nil {
		return res, err
	}
	if err := awaitClient(ctx, c, func(m client.Message) bool { return m.Cmd == game.CmdEnter }); err != nil {
		return res, err
	}
	c.Drop()
	away := "said while " + account + " was away"
	if err := speaker.request(ctx, game.CmdWorld, game.WorldChat{Text: away}); err != nil {
		return res, err
	}
	back := account + " is back"
	if err := send(game.CmdWorld, game.WorldChat{Text: back}); err != nil {
		return res, err
	}
	var resumedAt time.Time
	seen := map[string]bool{}
	for !(seen[away] && seen[back]) || resumedAt.IsZero() {
		select {
		case ev := <-c.Events():
			switch ev.Kind {
			case client.EvResumed:
				resumedAt = time.Now()
				res.Away, res.Resent = ev.Away, ev.Resent
			case client.EvEnded:
				return res, fmt.Errorf("%w: %s: session ended: %v", ErrPlayer, account, ev.Err)
			}
		case m := <-c.Messages():
			if m.Cmd != game.PushWorld {
				continue
			}
			var l game.ChatLine
			if game.Decode(m.Data, &l) != nil {
				continue
			}
			if seen[l.Text] {
				return res, fmt.Errorf("%w: %s: %q arrived twice", ErrPlayer, account, l.Text)
			}
			seen[l.Text] = true
			if !resumedAt.IsZero() && l.TS <= resumedAt.UnixMilli() && l.Text == away {
				res.Replayed++
			}
		case <-ctx.Done():
			return res, fmt.Errorf("%w: %s: waiting for the resume (resumed %v, line said while away seen %v, own line after seen %v): %w",
				ErrPlayer, account, !resumedAt.IsZero(), seen[away], seen[back], ctx.Err())
		}
	}
	return res, nil
}

func awaitClient(ctx context.Context, c *client.Client, match func(client.Message) bool) error {
	for {
		select {
		case m := <-c.Messages():
			if match(m) {
				return nil
			}
		case ev := <-c.Events():
			if ev.Kind == client.EvEnded {
				return fmt.Errorf("%w: session ended: %v", ErrPlayer, ev.Err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
