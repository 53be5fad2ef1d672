package service

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// NewLogger returns a logrus logger writing to w at level ("info", "debug",
// ...) in format "text" or "json" ("" means text). A bad level or format is
// a UsageError.
func NewLogger(w io.Writer, level, format string) (*logrus.Logger, error) {
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, Usagef("-log-level %q: want trace, debug, info, warn or error", level)
	}
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(lvl)
	switch strings.ToLower(format) {
	case "", "text":
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, Usagef("-log-format %q: want text or json", format)
	}
	return l, nil
}

// RedisLogger adapts a logrus logger to go-redis's internal logging
// interface (Printf with a context), at debug level: go-redis logs pool
// and reconnection chatter that the caller reports better as errors.
type RedisLogger struct {
	Log logrus.FieldLogger
}

// Printf logs one go-redis message at debug level.
func (l RedisLogger) Printf(_ context.Context, format string, v ...any) {
	l.Log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// NewRedisClient routes go-redis's process-wide logger to log (component
// go-redis, debug level) and returns a client for cfg. It does not contact
// Redis. An invalid cfg is a UsageError. Call it from main only: the
// go-redis logger is global.
func NewRedisClient(cfg RedisConfig, log logrus.FieldLogger) (redis.UniversalClient, error) {
	rdb, err := cfg.NewClient()
	if err != nil {
		return nil, Usage(err)
	}
	redis.SetLogger(RedisLogger{Log: log.WithField("component", "go-redis")})
	return rdb, nil
}
