// Package common holds the vocabulary every xserver package shares: node
// identities and types, the INode interface a game service programs
// against, the Member view of a remote node, callback signatures and the
// sentinel errors. It has no behaviour of its own and no mutable state.
package common
