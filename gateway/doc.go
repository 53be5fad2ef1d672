// Package gateway is xserver's data plane: the process players' clients
// connect to (TCP, or WebSocket carrying the same frames) and through which
// nodes reach clients and each other.
//
// A Gateway joins the cluster as a node of type common.Gateway, publishing
// its client address (port slots: 0 TCP, 1 WebSocket, 2 intranet) and its
// load (overload slots: 0 sessions, 1 open connections, 2 whether it
// accepts new connections, is full or is draining), so login services send
// players to the least loaded gateway that accepts them. Connections that
// have not logged in yet have a limit of their own (MaxPreLogin), so they
// cannot take every slot. Nodes with relay enabled dial its intranet
// listener and authenticate with the shared secret.
//
// A WebSocket client gets every kick a TCP client gets, followed by a close
// frame whose status is 4000 plus the kick code.
//
// A client's first frame is a login (account, token) checked against Redis
// (package login), or a resume of a session. Each later message carries a
// cmd whose quotient by the offset (1000 by default) names the target node
// type: an account bound to an instance of that type (a stateful type) goes
// there — messages wait for an instance whose link dropped for a short
// grace, then the account is rebound to a live one — and other types go to
// an instance picked by the selector (keyed by account for consistent
// hash). The gateway routes on the frame header and never decodes payloads.
//
// Sessions: a session lives apart from its connection. A client that logs
// in with protocol version 2 gets a session id and a resume secret; when
// its connection is lost the session waits Config.ResumeWindow for a
// resume on this gateway or any other (which takes the session's Redis
// record over and announces it, so this one lets go). Both directions are
// sequenced: client messages are acknowledged once their node processed
// them, and the nodes keep their messages to the player until the client
// acknowledged them, so nothing is lost or repeated across a lost
// connection or a dead gateway. The Redis record is the authority on which
// gateway holds a session: each gateway refreshes its sessions' records
// every Config.SessionRefresh and ends those the record no longer names;
// after Redis lost its data it restores them.
//
// When a session ends — logout, idle timeout, kick, the resume window
// passing, the drain of a session without resume — every node the account
// is bound to gets lose-account, once; not when the session was replaced by
// a new login of the same account bound to the same node, nor when it
// resumed elsewhere.
//
// Concurrency: each node link has one reader goroutine and one writer
// goroutine draining a bounded outbox; producers never block on a peer's
// socket. A client connection has goroutines only while it has work: its
// reads run in bursts on short-lived goroutines, and its writer runs while
// frames are queued. Between bursts an idle client over plain TCP, raw or
// WebSocket (the gateway frames WebSocket messages itself on the upgraded
// socket, with github.com/gobwas/ws), waits, on Linux, in an epoll set
// shared by the gateway (no goroutine of its own); TLS clients, and other
// systems, park one small goroutine each. A client that sends again within
// 500 ms is read on by the same goroutine (it lingers in an ordinary read)
// rather than parked, and over plain TCP a frame for a client whose send
// queue is idle is written by the goroutine that produced it: a request
// and its reply cross no goroutine hand-off in the gateway (a WebSocket
// client's frames go through its writer goroutine). A session is guarded by its own mutex;
// the session and link tables by one RWMutex, read on the hot path. Redis
// writes that follow a decision (a rebind, the end of a session) run on a
// small background queue, never on the data path. One tick goroutine
// flushes owed acknowledgements, asks stalled streams again and expires
// resume windows.
package gateway
