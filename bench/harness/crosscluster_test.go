package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRenderCrossing checks the crossing-clusters table: gateway ÷ direct
// for rate and work per CPU second, the CPU time per request it adds, the
// latency ratios, and an n/a row for a load either side missed.
func TestRenderCrossing(t *testing.T) {
	t.Parallel()
	sec := time.Second
	r := func(load, sys string, rate, work float64, cpu, p50, p99 time.Duration) Result {
		return Result{Load: load, System: sys, Rate: rate, Work: work, ProxyCPU: cpu, Wall: 10 * sec, P50: p50, P99: p99}
	}
	ms := time.Millisecond
	results := []Result{
		// direct: 200000 req in 10 CPU s = 20000/CPU s = 50 µs/req.
		r(LoadH1Max, SysXDirect, 20000, 200000, 10*sec, 1*ms, 4*ms),
		// gateway: 150000 req in 10 CPU s = 15000/CPU s = 66.7 µs/req.
		r(LoadH1Max, SysXGateway, 15000, 150000, 10*sec, 2*ms, 6*ms),
		r(LoadH1Max, SysCauseway2, 40000, 400000, 10*sec, ms/2, 2*ms),
		r(LoadTCP, SysXDirect, 1000, 1000, 1*sec, 0, 0),
		{Load: LoadTCP, System: SysXGateway, NA: "warm-up failed: refused"},
	}
	tests := []struct {
		name    string
		systems []string
		want    []string
		absent  []string
	}{
		{name: "both cross-cluster systems and plaintext two hops", systems: AllSystems,
			want: []string{
				"## Crossing clusters",
				"| h1-max | 20000 req/s | 15000 req/s | 0.75× | 20000 | 15000 | 0.75× | +16.7 µs/req | 1.00 ms → 2.00 ms | 2.00× | 4.00 ms → 6.00 ms | 1.50× |",
				"| tcp | n/a: warm-up failed: refused |",
				"(causeway-mtls ÷ causeway-2hop)",
				"| h1-max | 40000 req/s | 20000 req/s | 0.50× | 40000 | 20000 | 0.50× | +25.0 µs/req |",
			}},
		{name: "without causeway-2hop: no mTLS table", systems: []string{SysXDirect, SysXGateway},
			want:   []string{"## Crossing clusters", "+16.7 µs/req"},
			absent: []string{"÷ causeway-2hop"}},
		{name: "without the gateway: no section", systems: []string{SysCauseway2, SysXDirect},
			absent: []string{"Crossing clusters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			renderCrossing(&buf, &Report{Plan: Plan{Systems: tt.systems, Loads: []string{LoadH1Max, LoadTCP}, ProxyCores: "1", LoadCores: "0"}, Results: results})
			got := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("renderCrossing =\n%s\nwant %q", got, w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(got, a) {
					t.Errorf("renderCrossing =\n%s\nwant no %q", got, a)
				}
			}
		})
	}
}

// TestStartCrossCluster runs both cross-cluster systems as a benchmark run
// does (two `causeway identity serve` processes with federated bundles,
// real sidecars and gateway from bin/causeway) in front of the benchmark
// upstream, and checks that HTTP/1.1, h2c and TCP get through, that the
// east sidecar authorized west's SPIFFE ID (strict mode: only a verified
// mTLS caller is allowed), and that the gateway system's traffic went
// through the gateway while the direct one's did not.
func TestStartCrossCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real proxies and Workload APIs")
	}
	causeway, _ := filepath.Abs("../../bin/causeway")
	if _, err := os.Stat(causeway); err != nil {
		t.Skipf("no %s (make build)", causeway)
	}
	httpAddr, tcpAddr := startUpstream(t)
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	up := Ports{UpHTTP: port(httpAddr), UpTCP: port(tcpAddr)}
	dir, err := os.MkdirTemp("", "cwb-") // unix socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ids, err := StartIdentities(context.Background(), dir, "", causeway, causeway)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ids.Stop)

	var h2 http.Protocols
	h2.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Transport: &http.Transport{Protocols: &h2}, Timeout: 5 * time.Second}
	h1 := &http.Client{Timeout: 5 * time.Second}
	for _, tt := range []struct {
		system      string
		viaGateway  bool
		eastSidecar int // index in Children
	}{{SysXDirect, false, 0}, {SysXGateway, true, 0}} {
		t.Run(tt.system, func(t *testing.T) {
			sys, err := StartSystemWith(context.Background(), tt.system, dir, "", causeway, ids, up, 8)
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
			if _, err := Bulk(sys.TCP, 1<<20, 10*time.Second); err != nil {
				t.Errorf("TCP through %s: %v", tt.system, err)
			}
			east := sys.ConfigFiles[tt.eastSidecar]
			eastAdmin := adminOf(t, east)
			allowed := metricSum(t, "http://"+eastAdmin+"/metrics", "causeway_inbound_authorization_total",
				`caller="`+webID.String()+`"`, `decision="allow`)
			if allowed < 3 {
				t.Errorf("east sidecar allowed %v requests/flows of %s, want >= 3 (HTTP/1.1, h2c, TCP)", allowed, webID)
			}
			if tt.viaGateway != (sys.GatewayAdmin != "") {
				t.Fatalf("gateway admin %q for %s", sys.GatewayAdmin, tt.system)
			}
			if tt.viaGateway {
				if n := metricSum(t, "http://"+sys.GatewayAdmin+"/metrics", "causeway_gateway_connections_total"); n < 3 {
					t.Errorf("gateway forwarded %v connections, want >= 3 (one per service)", n)
				}
			}
		})
	}
}

// adminOf reads the admin address from a generated bootstrap.
func adminOf(t *testing.T, cfg string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Admin string }
	if err := json.Unmarshal(b, &v); err != nil || v.Admin == "" {
		t.Fatalf("%s: admin: %v", cfg, err)
	}
	return v.Admin
}

// metricSum adds up the samples of name whose labels contain every one of
// labels, from a Prometheus text endpoint.
func metricSum(t *testing.T, url, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", url, line, err)
		}
		sum += v
	}
	return sum
}
