// Package web is the login service's HTTP front: the JSON login API of
// internal/loginhttp (POST /login, GET /healthz) with the example game's
// browser client in front of it.
//
// The client is one page with no build step and no external resources:
// index.html, app.js and style.css, and the xserver JavaScript SDK's
// browser modules in sdk/ (a copy of clients/js/dist, refreshed by make
// web-sdk), all embedded in the binary. GET / serves the page; its form
// posts to /login on the same origin, and the SDK opens a resumable
// session over WebSocket at the gateway the ticket names: a lost
// connection is resumed automatically while the page shows
// "reconnecting…". The page speaks the example game's JSON bodies
// (examples/internal/game): enter the lobby, world chat, presence, find a
// match. The page keeps the last 200 chat and activity lines.
//
// Handler and NewLoginHandler return immutable handlers, safe for
// concurrent use. Config and DefaultConfig are the login API's
// (loginhttp.Config), so code outside examples/login can build the same
// front the binary serves.
package web
