// Package e2e holds the browser end-to-end test of the example game
// (build tag e2e; run it with `make e2e`).
//
// The test starts a whole cluster on a real redis-server of its own: in
// this process an mgrserver, a gateway with a WebSocket listener, the
// login service's HTTP front serving the browser client
// (examples/login/web) and a match node
// (examples/match/matchmaker); the lobby (examples/lobby, a command with no
// library part) is built and run as a child process. Two headless Chromium
// players, each in a browser context of its own, then use the page: log
// in, enter, see each other online, world-chat both ways, find a match
// against each other; a second login of one account kicks the first page.
// A second test checks the page's frame code against the hex dumps of
// docs/PROTOCOL.md.
//
// Screenshots, the cluster's log and the lobby's go to $E2E_ARTIFACTS
// (default: a new directory in os.TempDir()); the test logs their paths
// (make e2e runs it with -v). It needs redis-server and Chromium
// (/usr/bin/chromium, or $CHROMIUM): apt-get install redis-server
// chromium. Without the e2e tag the package is empty.
package e2e
