//go:build !unix

package redistest

import "os"

// Pause and Resume fail on platforms without SIGSTOP/SIGCONT.
func stopSignal() os.Signal { return nil }
func contSignal() os.Signal { return nil }
