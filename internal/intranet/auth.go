package intranet

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/xserver/xserver/common"
	pb "github.com/xserver/xserver/proto"
)

// NonceSize is the length of a Hello nonce.
const NonceSize = 32

// ErrAuth: the peer does not know the shared secret.
var ErrAuth = errors.New("intranet: authentication failed")

// NewNonce returns NonceSize random bytes.
func NewNonce() ([]byte, error) {
	b := make([]byte, NonceSize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("intranet: nonce: %w", err)
	}
	return b, nil
}

// MAC proves knowledge of secret for one connection: HMAC-SHA256 keyed by
// the secret over the server's nonce and the peer's node ID. The secret
// itself never crosses the wire.
func MAC(secret string, nonce, id []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(nonce)
	h.Write(id)
	return h.Sum(nil)
}

// CheckMAC compares in constant time.
func CheckMAC(secret string, nonce, id, mac []byte) error {
	if !hmac.Equal(MAC(secret, nonce, id), mac) {
		return ErrAuth
	}
	return nil
}

// Error codes carried by pb.Error before a connection is closed.
const (
	CodeAuth       uint32 = 1  // wrong shared secret
	CodeMalformed  uint32 = 2  // a frame that does not decode
	CodeTooLarge   uint32 = 3  // a frame over the size limit
	CodeUnexpected uint32 = 4  // a frame not allowed in this state
	CodeNotLeader  uint32 = 5  // this mgrserver does not lead
	CodeHandshake  uint32 = 6  // handshake deadline passed
	CodeTooMany    uint32 = 7  // connection limit reached
	CodeReplaced   uint32 = 8  // the same node ID registered again
	CodeShutdown   uint32 = 9  // graceful stop
	CodeBadInfo    uint32 = 10 // an invalid registration
	CodeHeartbeat  uint32 = 11 // silent for too long
	CodeStaleEpoch uint32 = 12 // the peer has seen a newer leader
)

// Limits on a registration.
const (
	MaxAddrs    = 8
	MaxPorts    = 16
	MaxOverload = 16
	MaxVersion  = 128
	MaxAddrLen  = 255
)

// ValidateInfo checks a node's self-description.
func ValidateInfo(in *pb.NodeInfo) error {
	if in == nil {
		return fmt.Errorf("%w: missing node info", common.ErrBadInput)
	}
	id, err := common.NodeIDFromBytes(in.Id)
	if err != nil {
		return err
	}
	if id.IsZero() {
		return fmt.Errorf("%w: zero node id", common.ErrBadInput)
	}
	if common.NodeType(in.Type) == common.Client || common.NodeType(in.Type) == common.MgrServer {
		return fmt.Errorf("%w: node type %d cannot register", common.ErrBadInput, in.Type)
	}
	if len(in.Addrs) > MaxAddrs || len(in.Ports) > MaxPorts || len(in.Overload) > MaxOverload {
		return fmt.Errorf("%w: too many addrs, ports or overload slots", common.ErrBadInput)
	}
	for _, a := range in.Addrs {
		if len(a) > MaxAddrLen || !utf8.ValidString(a) {
			return fmt.Errorf("%w: bad address", common.ErrBadInput)
		}
	}
	if len(in.Version) > MaxVersion || !utf8.ValidString(in.Version) {
		return fmt.Errorf("%w: bad version", common.ErrBadInput)
	}
	return nil
}
