package redistest_test

import (
	"context"
	"testing"

	"github.com/xserver/xserver/internal/redistest"
)

func TestExample(t *testing.T) {
	srv := redistest.Start(t) // stopped by t.Cleanup
	rdb := srv.Client(t)      // closed by t.Cleanup
	if err := rdb.Set(context.Background(), "lease", "node-1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	srv.Restart() // data is gone, like a real restart without persistence
	if n, _ := rdb.Exists(context.Background(), "lease").Result(); n != 0 {
		t.Fatal("lease survived the restart")
	}
}
