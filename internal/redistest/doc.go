// Package redistest runs a real redis-server process for tests.
//
// Start finds redis-server on PATH (failing the test with an install hint
// when it is missing), starts it on a free 127.0.0.1 port with persistence
// off and its working directory in tb.TempDir(), waits until it answers
// PING and registers Stop with tb.Cleanup. Restart, Pause and Resume let a
// test simulate a Redis restart (data lost) or a hung Redis (SIGSTOP).
//
// StartCluster runs a real Redis Cluster the same way: masters that share
// the slots evenly, each with replicas, formed with CLUSTER MEET,
// ADDSLOTSRANGE and REPLICATE, and a cluster-node-timeout of 1 s so that a
// killed master (Stop on its Server) is replaced by its replica within a
// few seconds. MasterOf and WaitMasterChange tell which node serves a key.
//
// A Server is meant to be driven from the test goroutine: Start, Restart,
// Pause, Resume and Client report failure with tb.Fatal, which must not be
// called from other goroutines. Its process state is guarded by a mutex, so
// Addr and Stop are safe from any goroutine. On Linux the child is killed
// if the test binary dies, so a timed-out test leaves no redis-server
// behind.
package redistest
