package mgrserver_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xserver/xserver/common"
	"github.com/xserver/xserver/mgrserver"
)

// The admin port serves /healthz, Prometheus /metrics and /nodes with the
// documented JSON shape.
func TestAdminEndpoints(t *testing.T) {
	c := newCluster(t)
	cfg := c.mgrConfig()
	cfg.Admin = "127.0.0.1:0"
	m := c.startMgr(cfg)
	standbyCfg := c.mgrConfig()
	standbyCfg.Admin = "127.0.0.1:0"
	standby := c.startMgr(standbyCfg)
	l := c.leader([]*mgrserver.Server{m, standby}, 10*time.Second)
	nodes := c.startNodes(3)
	waitFor(t, 10*time.Second, "converged", func() bool { return converged(l, nodes) })

	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(l.AdminAddr(), "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d", code)
	}
	code, body := get(l.AdminAddr(), "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "xserver_mgr_leader 1") || !strings.Contains(body, "xserver_mgr_members 3") {
		t.Fatalf("/metrics %d:\n%s", code, body)
	}
	for _, want := range []string{
		fmt.Sprintf("\nxserver_leader_epoch %d\n", l.Epoch()), "\nxserver_redis_last_error_age_seconds ", "\nxserver_redis_errors_total ",
		"\ngo_goroutines ", "\ngo_memstats_heap_inuse_bytes ", "\nprocess_resident_memory_bytes ", "\nprocess_open_fds ",
		"\nxserver_mgr_register_seconds_count 3\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	for _, s := range []*mgrserver.Server{m, standby} {
		code, body := get(s.AdminAddr(), "/nodes")
		if code != http.StatusOK {
			t.Fatalf("/nodes %d", code)
		}
		var doc struct {
			Leader bool   `json:"leader"`
			Epoch  uint64 `json:"epoch"`
			Nodes  []struct {
				ID       common.NodeID `json:"id"`
				Type     uint32        `json:"type"`
				Addrs    []string      `json:"addrs"`
				Ports    []int32       `json:"ports"`
				Overload []uint32      `json:"overload"`
				Version  string        `json:"version"`
			} `json:"nodes"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("/nodes is not the documented JSON: %v\n%s", err, body)
		}
		if s == l {
			if !doc.Leader || doc.Epoch == 0 || len(doc.Nodes) != 3 || doc.Nodes[0].Version != "v1" || len(doc.Nodes[0].Ports) != 1 {
				t.Fatalf("leader /nodes: %s", body)
			}
		} else if doc.Leader || len(doc.Nodes) != 0 {
			t.Fatalf("standby /nodes: %s", body)
		}
	}
}
