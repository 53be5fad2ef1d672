// Package wire is xserver's framing: every connection, intranet or client,
// carries a stream of length-prefixed frames
//
//	+----------------+--------------+-----------------------+
//	| length uint32  | kind uint16  | payload (length-2 B)  |
//	+----------------+--------------+-----------------------+
//
// with integers in big-endian order. length counts the kind and the
// payload, so it is at least 2. A frame whose length is under 2 or over the
// reader's limit is an error that ends the connection; the payload's meaning
// is defined by the kind (see the Kind constants and docs/PROTOCOL.md).
//
// Reader reuses one buffer: a payload it returns is only valid until the
// next ReadFrame. Append functions write into caller-owned buffers so hot
// paths can encode without allocating.
package wire
