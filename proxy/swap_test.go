package proxy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// swapMesh has two configs for the same client sidecar: A splits shop/web
// 90/10 between v1 and v2, B 10/90 and moves v2 to a second app instance.
type swapMesh struct {
	a, b   *spec.NodeConfig
	p      *proxy.Proxy
	base   string
	admin  string
	tcp    string
	apps   []*demoapp.Server
	echoTC *demoapp.Server
}

// echoListen is where the fixed port of shop/echo:7000 listens.
func newSwapMesh(t *testing.T, echoListen string) *swapMesh {
	t.Helper()
	m := &swapMesh{}
	for _, name := range []string{"web-v1", "web-v2", "web-v2"} {
		m.apps = append(m.apps, proxytest.App(t, demoapp.Options{Name: name, Listen: "on", Latency: 5 * time.Millisecond}))
	}
	m.echoTC = proxytest.App(t, demoapp.Options{Name: "echo", TCPEcho: "on"})
	build := func(w1, w2 int64, v2 *demoapp.Server) *spec.NodeConfig {
		in := spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{
			proxytest.Service("shop/web", 80, spec.ProtocolHTTP),
			proxytest.Service("shop/web-v1", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, m.apps[0].HTTPAddr, 80)),
			proxytest.Service("shop/web-v2", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, v2.HTTPAddr, 80)),
			proxytest.Service("shop/echo", 7000, spec.ProtocolTCP, proxytest.AppEndpoint(t, m.echoTC.TCPAddr, 7000)),
		}, Splits: []spec.Split{{Key: proxytest.K("shop/web-split"), Root: proxytest.K("shop/web"), Backends: []spec.Backend{
			{Service: proxytest.K("shop/web-v1"), Weight: w1}, {Service: proxytest.K("shop/web-v2"), Weight: w2}}}}}
		return proxytest.Compile(t, in, spec.Node{ID: "client"})
	}
	m.a, m.b = build(900, 100, m.apps[1]), build(100, 900, m.apps[2])
	m.p = startProxy(t, &proxy.Bootstrap{
		Admin: "127.0.0.1:0",
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{
			{Service: "shop/web", Port: 80, Listen: "127.0.0.1:0"}, {Service: "shop/echo", Port: 7000, Listen: echoListen}}},
		Config: m.a,
	})
	m.base = "http://" + m.p.FixedAddr("shop/web", 80).String()
	m.tcp = m.p.FixedAddr("shop/echo", 7000).String()
	m.admin = "http://" + m.p.AdminAddr().String()
	return m
}

// TestConfigSwapUnderLoad: swapping configs every 100 ms while clients send
// steadily fails no request, and a TCP flow opened before the swaps keeps
// working through them.
func TestConfigSwapUnderLoad(t *testing.T) {
	m := newSwapMesh(t, "127.0.0.1:0")
	tc, err := net.Dial("tcp", m.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(t)
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := c.Get(m.base + "/")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}
	// At least 20 swaps, and on until the clients have sent 100 requests
	// across them: a loaded machine only takes longer (600 swaps, 60 s,
	// stop a load that does not run at all).
	swaps := 0
	for ; swaps < 20 || (sent.Load() < 100 && swaps < 600); swaps++ {
		i := swaps
		time.Sleep(100 * time.Millisecond)
		cfg := m.a
		if i%2 == 0 {
			cfg = m.b
		}
		if err := m.p.Apply(cfg); err != nil {
			t.Fatalf("swap %d: %v", i, err)
		}
		msg := fmt.Sprintf("tcp-%d", i)
		io.WriteString(tc, msg)
		got := make([]byte, len(msg))
		// A broken flow errors at once; the deadline only stops a hung one,
		// with room for a CI machine running every package at once.
		tc.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.ReadFull(tc, got); err != nil || string(got) != msg {
			t.Fatalf("TCP flow across swap %d: %q %v", i, got, err)
		}
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed across %d swaps; first: %v", failed.Load(), sent.Load(), swaps, firstErr.Load())
	}
	if sent.Load() < 100 {
		t.Fatalf("only %d requests sent; the load was not steady", sent.Load())
	}
	t.Logf("%d requests, 0 failed, %d swaps", sent.Load(), swaps)
	mfs := proxytest.Scrape(t, m.admin+"/metrics")
	if got := proxytest.Sum(mfs, "causeway_config_updates_total", map[string]string{"result": "applied"}); got != float64(swaps+1) {
		t.Fatalf("applied configs = %v, want %d", got, swaps+1)
	}
}

// TestConfigRefused: a config whose Table cannot be prepared, or that needs
// a listener that cannot be bound, is refused with a reason and the old
// config serves on.
func TestConfigRefused(t *testing.T) {
	// Hold a UDP port; the echo fixed port listens on the same number (TCP).
	holder, echoListen := udpHeldTCPFree(t)
	defer holder.Close()
	m := newSwapMesh(t, echoListen)
	c := client(t)
	badRegex := *m.b
	badRegex.Version = "bad-regex"
	badRegex.Upstreams = append([]spec.Upstream(nil), m.b.Upstreams...)
	for i := range badRegex.Upstreams {
		badRegex.Upstreams[i].Routes = []spec.UpstreamRoute{{Kind: spec.RouteHTTP, Matches: []spec.Match{{Name: "x", PathRegex: "("}}}}
	}
	// The same config, but shop/echo:7000 becomes UDP: its fixed port must
	// be rebound as a UDP socket, which this test holds.
	udp := *m.b
	udp.Version = "needs-udp"
	udp.Upstreams = append([]spec.Upstream(nil), m.b.Upstreams...)
	for i, up := range udp.Upstreams {
		if up.Service.Name == "echo" {
			udp.Upstreams[i].Ports = []spec.Port{{Port: 7000, Protocol: spec.ProtocolUDP}}
		}
	}
	cases := []struct {
		name string
		cfg  *spec.NodeConfig
		want string
	}{
		{"bad regex", &badRegex, "pathRegex"},
		{"listener cannot bind", &udp, "bind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := m.p.Apply(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply: %v, want an error naming %q", err, tc.want)
			}
			if v := m.p.Config().Version; v != m.a.Version {
				t.Fatalf("config in force %s, want the old %s", v, m.a.Version)
			}
			if code, _, body := do(t, c, mustReq(t, "GET", m.base+"/", nil)); code != 200 {
				t.Fatalf("old config stopped serving: %d %s", code, body)
			}
		})
	}
	var view struct{ Version string }
	resp, err := http.Get(m.admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || view.Version != m.a.Version {
		t.Fatalf("/config version %q (%v), want %s", view.Version, err, m.a.Version)
	}
	if got := proxytest.Sum(proxytest.Scrape(t, m.admin+"/metrics"), "causeway_config_updates_total", map[string]string{"result": "refused"}); got != 2 {
		t.Fatalf("refused configs = %v, want 2", got)
	}
}

// TestMetricsAndTap: /metrics (parsed with expfmt) counts exactly what was
// sent, per backend as the client saw it; /tap streams request summaries;
// /ready and /live answer.
func TestMetricsAndTap(t *testing.T) {
	m := newSwapMesh(t, "127.0.0.1:0")
	c := client(t)
	for _, path := range []string{"/ready", "/live"} {
		if code, _, body := do(t, c, mustReq(t, "GET", m.admin+path, nil)); code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	tapResp, err := http.Get(m.admin + "/tap")
	if err != nil {
		t.Fatal(err)
	}
	defer tapResp.Body.Close()

	const n = 300
	seen := map[string]int{}
	for i := range n {
		code, name, _ := do(t, c, mustReq(t, "GET", fmt.Sprintf("%s/item/%d", m.base, i), nil))
		if code != 200 {
			t.Fatalf("GET: %d", code)
		}
		seen["shop/"+name]++
	}
	mfs := proxytest.Scrape(t, m.admin+"/metrics")
	out := map[string]string{"direction": "outbound", "service": "shop/web"}
	if got := proxytest.Sum(mfs, "causeway_requests_total", out); got != n {
		t.Fatalf("causeway_requests_total = %v, want %d", got, n)
	}
	if got := proxytest.Sum(mfs, "causeway_responses_total", map[string]string{"service": "shop/web", "status_code": "200", "classification": "success"}); got != n {
		t.Fatalf("successful 200 responses = %v, want %d", got, n)
	}
	if got := proxytest.Sum(mfs, "causeway_response_latency_seconds", out); got != n {
		t.Fatalf("latency observations = %v, want %d", got, n)
	}
	for backend, want := range seen {
		if got := proxytest.Sum(mfs, "causeway_responses_total", map[string]string{"backend": backend}); got != float64(want) {
			t.Fatalf("responses from %s = %v, client saw %d", backend, got, want)
		}
	}

	br := bufio.NewReader(tapResp.Body)
	line, err := br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("tap: %v", err)
	}
	var ev proxy.TapEvent
	if err := json.Unmarshal(line, &ev); err != nil || !strings.HasPrefix(ev.Path, "/item/") || ev.Status != 200 || ev.Service != "shop/web" {
		t.Fatalf("tap event %s (%v)", line, err)
	}
}

// TestStartWithoutConfig: a proxy waiting for its first config (the
// control plane's) is not ready and refuses traffic without failing; the
// first Apply makes it ready.
func TestStartWithoutConfig(t *testing.T) {
	p := startProxy(t, &proxy.Bootstrap{
		Admin:    "127.0.0.1:0",
		Inbound:  proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Outbound: proxy.OutboundConfig{HTTPProxy: "127.0.0.1:0", Ports: []proxy.FixedPort{{Service: "shop/web", Port: 80, Listen: "127.0.0.1:0"}}},
	})
	c := client(t)
	admin := "http://" + p.AdminAddr().String()
	if code, _, _ := do(t, c, mustReq(t, "GET", admin+"/ready", nil)); code != http.StatusServiceUnavailable {
		t.Fatalf("/ready before any config: %d, want 503", code)
	}
	// Without a config the port's protocol is unknown: the connection is
	// closed rather than answered in a protocol that may be wrong.
	if resp, err := c.Get("http://" + p.FixedAddr("shop/web", 80).String() + "/"); err == nil {
		resp.Body.Close()
		t.Fatalf("fixed port before any config answered %s", resp.Status)
	}
	in, err := net.Dial("tcp", p.InboundAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "CWY\x01\x00\x50\x00\x00GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	in.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err := in.Read(make([]byte, 64)); err == nil {
		t.Fatalf("inbound answered %d bytes with no config", n)
	}
	in.Close()
	app := proxytest.App(t, demoapp.Options{Name: "web", Listen: "on"})
	cfg := proxytest.Compile(t, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{
		proxytest.Service("shop/web", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, app.HTTPAddr, 80))}}, spec.Node{ID: "c"})
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := do(t, c, mustReq(t, "GET", admin+"/ready", nil)); code != 200 {
		t.Fatalf("/ready after Apply: %d", code)
	}
	if code, name, _ := do(t, c, mustReq(t, "GET", "http://"+p.FixedAddr("shop/web", 80).String()+"/", nil)); code != 200 || name != "web" {
		t.Fatalf("fixed port after Apply: %d %q", code, name)
	}
}

// udpHeldTCPFree finds a loopback port number whose TCP side is free and
// whose UDP side the returned socket holds. The TCP side is found by
// binding it (other packages' tests open connections on loopback at the same
// time, so a random UDP port's TCP twin is often taken) and released only
// when the UDP side is held, leaving the proxy a short window to rebind it.
func udpHeldTCPFree(t *testing.T) (net.PacketConn, string) {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			return pc, addr
		}
	}
	t.Fatal("no loopback port had both TCP and UDP free in 50 tries")
	return nil, ""
}
