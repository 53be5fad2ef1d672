package service_test

import (
	"flag"
	"fmt"
	"os"

	"github.com/xserver/xserver/service"
)

// A binary's main: shared flags plus its own, flag > XSERVER_<FLAG> >
// default, and an exit status from the error.
func Example() {
	env := map[string]string{"XSERVER_SECRET": "from-the-environment", "XSERVER_LISTEN": "127.0.0.1:0"}
	getenv := func(k string) string { return env[k] }

	var common service.Common
	fs := flag.NewFlagSet("mybinary", flag.ContinueOnError)
	common.RegisterFlags(fs)
	listen := fs.String("listen", "0.0.0.0:7300", "listen `address`")

	err := service.Parse(fs, []string{"-cluster", "prod"}, getenv)
	if err == nil {
		err = common.Check()
	}
	if code := service.Exit(os.Stdout, "mybinary", err); code != service.ExitOK {
		return // os.Exit(code) in a real main
	}
	fmt.Println(common.Cluster, *listen, common.LogLevel)
	// Output: prod 127.0.0.1:0 info
}

func ExampleRequireSecret() {
	code := service.Exit(os.Stdout, "mybinary", service.RequireSecret(""))
	fmt.Println("exit status", code)
	// Output:
	// mybinary: -secret is required: every mgrserver, gateway and node of a cluster authenticates with the same shared secret; set XSERVER_SECRET in the environment (preferred) or pass -secret
	// Run mybinary -h to list flags and their XSERVER_ environment variables.
	// exit status 2
}
