// Package proto holds the protobuf messages of xserver's intranet control
// plane (cluster.proto), generated with gogo/protobuf's gogofaster plugin.
// The generated code is committed; `make proto` regenerates it. Frames
// carrying these messages are described in package common/wire and in
// docs/PROTOCOL.md.
package proto
