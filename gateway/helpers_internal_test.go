package gateway

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

// nilRedis is a client that is never dialled (for tests that do not reach
// Redis).
func nilRedis(tb testing.TB) redis.UniversalClient {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	tb.Cleanup(func() { c.Close() })
	return c
}
