package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test must leave no goroutine behind: a node's Close waits for all
// of its goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
