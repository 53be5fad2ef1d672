package main

import (
	"context"
	"crypto/subtle"
	"errors"

	"github.com/xserver/xserver/login"
)

// errPasswordMismatch is the demo checker's rejection. Like every Checker
// error it names no credential: login.Service wraps it and the HTTP layer
// logs it.
var errPasswordMismatch = errors.New("password mismatch")

// newChecker returns the account check the service uses.
//
// THIS IS WHERE YOUR OWN ACCOUNT CHECK GOES. The demo accepts any account
// whose password equals -password, one shared password for everybody:
// fine for trying the cluster out, useless for anything else. A real game
// looks the account up in its database and compares a salted hash, or
// verifies a platform's session ticket with its SDK. Whatever it does, a
// login.Checker must
//
//   - return nil to accept and any error to reject (the client gets 401),
//   - honour ctx (a login is bounded; return ctx.Err() when it ends),
//   - be safe for concurrent use (requests run in parallel),
//   - keep the credential out of its errors (they are logged).
func newChecker(password string) login.Checker {
	want := []byte(password)
	return login.CheckerFunc(func(_ context.Context, _, credential string) error {
		if subtle.ConstantTimeCompare([]byte(credential), want) != 1 {
			return errPasswordMismatch
		}
		return nil
	})
}
