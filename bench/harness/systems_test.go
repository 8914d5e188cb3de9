package harness

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartSystem starts each peer the way a benchmark run does (generated
// config, its own process, stopped by PID) in front of the benchmark
// upstream and sends one HTTP/1.1 request, one h2c request and a 1 MiB TCP
// transfer through it.
func TestStartSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real proxies")
	}
	httpAddr, tcpAddr := startUpstream(t)
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	up := Ports{UpHTTP: port(httpAddr), UpTCP: port(tcpAddr)}
	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &h2}, Timeout: 5 * time.Second}
	h1 := &http.Client{Timeout: 5 * time.Second}

	// Causeway runs from the binary `make build` leaves in bin/; without it
	// (a fresh clone under `make test`) those cases are skipped.
	causeway, _ := filepath.Abs("../../bin/causeway")
	tests := []struct {
		system, binary string
	}{
		{SysNone, ""},
		{SysHAProxy, "haproxy"},
		{SysNginx, "nginx"},
		{SysCauseway1, causeway},
		{SysCauseway2, causeway},
	}
	for _, tt := range tests {
		t.Run(tt.system, func(t *testing.T) {
			if tt.binary != "" {
				if _, err := exec.LookPath(tt.binary); err != nil {
					t.Skipf("%s not installed (bench/install.sh installs it)", tt.binary)
				}
			}
			sys, err := StartSystem(context.Background(), tt.system, t.TempDir(), "", causeway, up, 8)
			if err != nil {
				t.Fatal(err)
			}
			defer sys.Stop()
			for _, c := range []struct {
				name   string
				client *http.Client
				addr   string
				proto  int
			}{{"HTTP/1.1", h1, sys.H1, 1}, {"h2c", h2c, sys.H2, 2}} {
				resp, err := c.client.Get("http://" + c.addr + "/")
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.ProtoMajor != c.proto {
					t.Errorf("%s through %s: %s %s, want 200 over HTTP/%d", c.name, tt.system, resp.Proto, resp.Status, c.proto)
				}
			}
			if sys.TCP == "" {
				t.Logf("TCP n/a: %s", sys.TCPNA)
			} else if _, err := Bulk(sys.TCP, 1<<20, 10*time.Second); err != nil {
				t.Errorf("TCP through %s: %v", tt.system, err)
			}
			if tt.system != SysNone && sys.IdleRSS <= 0 {
				t.Errorf("idle RSS %d, want > 0", sys.IdleRSS)
			}
			pids := sys.PIDs()
			sys.Stop()
			for _, pid := range pids {
				if _, err := CPUTime(pid); err == nil {
					t.Errorf("process %d still there after Stop", pid)
				}
			}
		})
	}
}

func TestSidecarArgv(t *testing.T) {
	if got := sidecarArgv("/x/bin/causeway-proxy", "c.json"); strings.Join(got, " ") != "/x/bin/causeway-proxy --config c.json" {
		t.Errorf("slim binary: %q", got)
	}
	if got := sidecarArgv("bin/causeway", "c.json"); strings.Join(got, " ") != "bin/causeway proxy --config c.json" {
		t.Errorf("full binary: %q", got)
	}
}
