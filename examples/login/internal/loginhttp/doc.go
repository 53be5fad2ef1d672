// Package loginhttp is the HTTP JSON face of examples/login: it turns
// POST /login requests into login.Service.Login calls and their results
// into status codes a game client can act on.
//
//	POST /login   {"account": "alice", "password": "…"}
//	  200  the login.Ticket as JSON (gateway address, token, bindings)
//	  400  the body is not that JSON object, or the account name is invalid
//	  401  the Checker rejected the credentials
//	  413  the body is too large
//	  503  no gateway, no live instance of a stateful type, Redis
//	       unavailable or the login timed out; Retry-After says when to retry
//	  500  anything else
//	GET /healthz
//	  200  {"status": "ok"}, or 503 with the reason
//
// Every error body is {"error": "…"}: a short public message; the detail
// goes to the log. Every response allows any origin (CORS), and
// OPTIONS /login answers a browser's preflight, so a web client served
// from another port can log in.
//
// Neither responses nor log lines ever contain a password; tokens appear
// only in the 200 body, which is marked Cache-Control: no-store.
//
// The handler keeps no state of its own and is safe for concurrent use;
// it blocks each request on one Service.Login call, bounded by
// Config.Timeout.
package loginhttp
