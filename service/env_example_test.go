package service_test

import (
	"flag"
	"fmt"

	"github.com/xserver/xserver/service"
)

// Flags and their XSERVER_ environment variables: the command line beats
// the environment, which beats the default.
func ExampleParse() {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	addr := fs.String("redis", "127.0.0.1:6379", "redis address")
	ttl := fs.Duration("lease-ttl", 0, "lease lifetime")

	env := map[string]string{
		"XSERVER_REDIS":     "redis.internal:6379",
		"XSERVER_LEASE_TTL": "15s",
	}
	// -redis on the command line beats XSERVER_REDIS; -lease-ttl comes
	// from XSERVER_LEASE_TTL.
	err := service.Parse(fs, []string{"-redis", "10.0.0.1:6379"},
		func(k string) string { return env[k] })
	fmt.Println(*addr, *ttl, err)
	// Output: 10.0.0.1:6379 15s <nil>
}

func ExampleEnvName() {
	fmt.Println(service.EnvName("lease-ttl"))
	// Output: XSERVER_LEASE_TTL
}
