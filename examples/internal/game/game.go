// Package game is the protocol of the example game shared by the lobby,
// match, bot and browser examples: node types, command numbers and the JSON
// bodies they carry. Payloads are JSON so the browser client needs no
// build step; a real game would use protobuf the same way.
//
// Client commands are cmd = type × 1000 + n (the gateway's default offset).
// A node receives n; replies and pushes carry the full client command.
// Node-to-node commands are small numbers on the lobby and match types.
package game

import (
	"encoding/json"
	"fmt"

	"github.com/xserver/xserver/common"
)

// Node types of the example game.
const (
	LobbyType common.NodeType = common.FirstGameType     // stateful: a player's lobby
	MatchType common.NodeType = common.FirstGameType + 1 // stateless: matchmaking
)

// Offset is the gateway's cmd offset the examples assume.
const Offset = 1000

// Client → lobby requests (the lobby answers with the same cmd).
const (
	CmdEnter   uint64 = 4001 // Enter → EnterReply
	CmdWorld   uint64 = 4002 // WorldChat → Ack
	CmdPrivate uint64 = 4003 // PrivateChat → Ack
	CmdOnline  uint64 = 4004 // {} → OnlineList
	CmdQueue   uint64 = 4005 // Queue → Ack
)

// Lobby → client pushes.
const (
	PushPresence uint64 = 4010 // Presence
	PushWorld    uint64 = 4011 // ChatLine (world)
	PushPrivate  uint64 = 4012 // ChatLine (private)
	PushMatched  uint64 = 4013 // Matched
)

// WorldGroup is the group of every player who entered a lobby: world
// lines are broadcast to it.
const WorldGroup = "world"

// Node-to-node commands (bodies are JSON, sent as common.Raw).
const (
	NodePresence uint64 = 1  // lobby → lobbies: Presence
	NodeWho      uint64 = 3  // lobby → lobbies: {} — answer with NodePresence per player
	NodeEnqueue  uint64 = 10 // lobby → match, a call: Ticket → Enqueued
	NodeMatched  uint64 = 11 // match → lobby, a call: Matched (for one of the lobby's players) → {}
)

// Player is a player as others see it.
type Player struct {
	Account string `json:"account"`
	Name    string `json:"name"`
	// Away: the player's connection is lost and the game waits for it to
	// come back (its session may resume); show "reconnecting…".
	Away bool `json:"away,omitempty"`
}

// Enter is the first request a client sends to its lobby.
type Enter struct {
	Name string `json:"name"`
}

// EnterReply welcomes a player with the online list.
type EnterReply struct {
	OK      bool     `json:"ok"`
	Account string   `json:"account"`
	Online  []Player `json:"online"`
	Error   string   `json:"error,omitempty"`
}

// OnlineList answers CmdOnline.
type OnlineList struct {
	Online []Player `json:"online"`
}

// WorldChat is a line for everyone online.
type WorldChat struct {
	Text string `json:"text"`
}

// PrivateChat is a line for one player.
type PrivateChat struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Queue asks for a match.
type Queue struct {
	Mode string `json:"mode"`
}

// Ack answers a request that has no other reply.
type Ack struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// ChatLine is a delivered chat message.
type ChatLine struct {
	From string `json:"from"`
	Name string `json:"name"`
	Text string `json:"text"`
	TS   int64  `json:"ts"` // unix milliseconds, set by the sender's lobby
}

// Presence says a player came online, left, or is away (reconnecting) or
// back.
type Presence struct {
	Player
	Online bool `json:"online"`
}

// Ticket is a lobby's request to queue one of its players.
type Ticket struct {
	Player
	Mode  string        `json:"mode"`
	Lobby common.NodeID `json:"lobby"`
}

// Matched tells a player (through its lobby) who it plays against.
type Matched struct {
	MatchID  string `json:"match_id"`
	Account  string `json:"account"` // the player being told
	Mode     string `json:"mode"`
	Opponent Player `json:"opponent"`
}

// Enqueued answers a NodeEnqueue call: the ticket waits (Matched nil), or
// it completed a match and Matched is what its player is told.
type Enqueued struct {
	Matched *Matched `json:"matched,omitempty"`
}

// Dequeued answers a NodeDequeue call: whether a waiting ticket was
// withdrawn.
type Dequeued struct {
	Withdrawn bool `json:"withdrawn"`
}

// Limits on player input.
const (
	MaxName = 32
	MaxText = 512
)

// Encode marshals a body.
func Encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("game: encode %T: %w", v, err)
	}
	return b, nil
}

// Decode unmarshals a body, with a clear error for bad input.
func Decode(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %T: %v", common.ErrBadInput, v, err)
	}
	return nil
}
