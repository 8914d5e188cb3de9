package gateway_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// ejectFor is the callers' base ejection time here: recovery is seen in
// about that long instead of the 30 s default.
const ejectFor = time.Second

// westApp is one of west's own shop/books apps that can be killed and
// started again on the same address, as a restarted workload comes back.
type westApp struct {
	name string
	addr string
	srv  *demoapp.Server
}

func startWestApp(t *testing.T, name, addr string) *westApp {
	t.Helper()
	a := &westApp{name: name}
	if addr == "" {
		a.srv = proxytest.App(t, demoapp.Options{Name: name, Listen: "on"})
		a.addr = a.srv.HTTPAddr.String()
		return a
	}
	// The same address again: the endpoint is its address, so the
	// kernel's choice cannot be used here. Go listeners set SO_REUSEADDR,
	// and the port was released an instant ago.
	srv, err := demoapp.Start(context.Background(), demoapp.Options{Name: name, Listen: addr})
	if err != nil {
		t.Fatalf("restart %s on %s: %v", name, addr, err)
	}
	t.Cleanup(func() { srv.Close(); <-srv.Done() })
	a.srv, a.addr = srv, addr
	return a
}

func (a *westApp) kill() { a.srv.Close(); <-a.srv.Done() }

// failoverCaller is west's shop/web sidecar for a model where west runs
// shop/books itself, exports it, and east exports it too: the caller's
// shop/books has west's endpoints at priority 0 and east's gateway at
// priority 1 (spec.BuildWithImports), and one port.
func (m *multi) failoverCaller(t *testing.T, local []spec.Endpoint, port spec.Port) *proxy.Proxy {
	t.Helper()
	westBooks := spec.Service{Key: booksKey, Export: true, Identities: []spiffeid.ID{wid(westTD, "shop", "books")},
		Ports: []spec.Port{port}, Endpoints: local}
	imports := m.westInput(t)
	imports.Services = imports.Services[:1] // shop/books-east, as federation imports it
	in := spec.Input{TrustDomain: westTD.Name(), Mode: spec.ModeStrict, Services: []spec.Service{westBooks}}
	snap, diags := spec.BuildWithImports(in, spec.Input{Services: imports.Services}, spec.BuildOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	src := source(t, m.west, "shop", "web", m.westFed)
	return startProxy(t, &proxy.Bootstrap{
		Admin:    "127.0.0.1:0",
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: booksKey.String(), Port: port.Port, Listen: "127.0.0.1:0"}}},
		Policy:   proxy.Policy{Outlier: proxy.OutlierPolicy{BaseEjectionTime: proxy.Duration(ejectFor)}},
		Config:   spec.Compile(snap, spec.Node{ID: "west-web", Identity: wid(westTD, "shop", "web")}),
	}, proxy.Options{SVIDs: src, Bundles: src})
}

// load sends n GETs from workers goroutines and counts the answers that
// were not 200.
func load(t *testing.T, c *http.Client, url string, n, workers int) (failed int) {
	t.Helper()
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := c.Get(url)
				if err != nil {
					bad.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(bad.Load())
}

// TestFailoverToLinkedCluster: west's shop/books is served by west while
// west's endpoints are healthy; when they die, west's callers are answered
// by east through its gateway with no failed request (the balancer gives up
// the local level and the proxy's retries carry the requests that saw it
// die); when they come back, traffic returns once their ejection ends.
func TestFailoverToLinkedCluster(t *testing.T) {
	m := newMulti(t, 1)
	const n, workers = 300, 4
	tests := []struct {
		name string
		apps int // west's shop/books apps
		// sidecar puts a west destination sidecar in front of the apps:
		// when the app dies the endpoint answers 502 rather than refusing.
		sidecar bool
	}{
		{name: "two app endpoints: connections refused", apps: 2},
		{name: "a sidecar endpoint: its app gone, 5xx", apps: 1, sidecar: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var apps []*westApp
			var local []spec.Endpoint
			for i := range tt.apps {
				a := startWestApp(t, "books-west-"+string(rune('a'+i)), "")
				apps = append(apps, a)
				local = append(local, proxytest.AppEndpoint(t, a.addr, portHTTP))
			}
			if tt.sidecar {
				local = m.westSidecar(t, apps[0].addr)
			}
			caller := m.failoverCaller(t, local, spec.Port{Name: "http", Port: portHTTP, Protocol: spec.ProtocolHTTP})
			c := httpClient(t)
			url := "http://" + caller.FixedAddr(booksKey.String(), portHTTP).String() + "/books"
			served := func() (west, east int64) {
				for _, a := range apps {
					west += a.srv.Requests()
				}
				return west, m.app.Requests()
			}

			w0, e0 := served()
			if failed := load(t, c, url, n, workers); failed != 0 {
				t.Fatalf("healthy: %d of %d requests failed", failed, n)
			}
			w1, e1 := served()
			if w1-w0 != n || e1 != e0 {
				t.Fatalf("healthy: west served %d, east %d; want all %d in west", w1-w0, e1-e0, n)
			}

			for _, a := range apps {
				a.kill()
			}
			failed := load(t, c, url, n, workers)
			_, e2 := served()
			t.Logf("local down: %d of %d requests failed, east served %d", failed, n, e2-e1)
			if failed != 0 || e2-e1 != n {
				t.Errorf("local down: %d failed, east served %d of %d; want none failed, all from east", failed, e2-e1, n)
			}
			mfs := proxytest.Scrape(t, "http://"+caller.AdminAddr().String()+"/metrics")
			picks := proxytest.Sum(mfs, "causeway_upstream_picks_total", map[string]string{"cluster": booksKey.String() + ":80", "priority": "1"})
			t.Logf("local down: retries spent %v", proxytest.Sum(mfs, "causeway_retries_total", nil))
			if picks < n {
				t.Errorf("causeway_upstream_picks_total{priority=1} = %v, want >= %d", picks, n)
			}

			back := time.Now()
			for i, a := range apps {
				apps[i] = startWestApp(t, a.name, a.addr)
			}
			// Requests keep succeeding (from east) until the ejection of
			// west's endpoints ends and a probe brings each back. Each
			// probe that failed while west was down doubled the ejection
			// (1 s, 2 s, 4 s, 8 s ...), so how long that phase took sets
			// the wait: under a second here, but on a loaded CI machine
			// the 300 requests can take long enough for an 8 or 16 s
			// ejection to be pending when the apps return. The bound only
			// has to tell "returns" from "never returns".
			const returnWithin = 60 * time.Second
			var returned time.Duration
			for time.Since(back) < returnWithin {
				w, _ := served()
				if failed := load(t, c, url, 10, 1); failed != 0 {
					t.Fatalf("while west comes back: %d of 10 failed", failed)
				}
				if w2, _ := served(); w2 > w {
					returned = time.Since(back)
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if returned == 0 {
				t.Fatalf("traffic did not return to west within %s", returnWithin)
			}
			t.Logf("local back: first request served by west %s after restart (base ejection %s)", returned.Round(time.Millisecond), ejectFor)
			// Every west endpoint is probed back within another ejection time.
			time.Sleep(ejectFor)
			w3, e3 := served()
			if failed := load(t, c, url, n, workers); failed != 0 {
				t.Errorf("recovered: %d of %d failed", failed, n)
			}
			w4, e4 := served()
			t.Logf("recovered: west served %d, east %d of %d", w4-w3, e4-e3, n)
			if w4-w3 != n || e4 != e3 {
				t.Errorf("recovered: west served %d, east %d; want all %d in west", w4-w3, e4-e3, n)
			}
		})
	}
}

// westSidecar starts a west destination sidecar for shop/books (permissive)
// in front of the app at appAddr and returns its endpoint.
func (m *multi) westSidecar(t *testing.T, appAddr string) []spec.Endpoint {
	t.Helper()
	booksID := wid(westTD, "shop", "books")
	svc := spec.Service{Key: booksKey, Identities: []spiffeid.ID{booksID},
		Ports: []spec.Port{{Name: "http", Port: portHTTP, Protocol: spec.ProtocolHTTP, TargetPort: proxytest.Port(t, appAddr)}}}
	in := spec.Input{TrustDomain: westTD.Name(), Mode: spec.ModePermissive, Services: []spec.Service{svc}}
	src := source(t, m.west, "shop", "books", m.westFed)
	p := startProxy(t, &proxy.Bootstrap{
		Admin:   "127.0.0.1:0",
		Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Config:  proxytest.Compile(t, in, spec.Node{ID: "west-books", Identity: booksID, Services: []spec.Key{booksKey}}),
	}, proxy.Options{SVIDs: src, Bundles: src})
	ep := proxytest.SidecarEndpoint(t, p.InboundAddr())
	ep.Identity = booksID
	return []spec.Endpoint{ep}
}

// TestFailoverTCP: TCP flows fail over too. A refused connect ejects the
// dead local app at once and is tried again on another endpoint (no byte
// was sent yet), so once the local level is empty the same flow goes to
// east: no flow fails.
func TestFailoverTCP(t *testing.T) {
	m := newMulti(t, 1)
	var apps []*demoapp.Server
	var local []spec.Endpoint
	for range 2 {
		a := proxytest.App(t, demoapp.Options{Name: "books-west", TCPEcho: "on"})
		apps = append(apps, a)
		local = append(local, proxytest.AppEndpoint(t, a.TCPAddr, portTCP))
	}
	caller := m.failoverCaller(t, local, spec.Port{Name: "tcp", Port: portTCP, Protocol: spec.ProtocolTCP})
	addr := caller.FixedAddr(booksKey.String(), portTCP).String()
	flows := func(n int) (failed int) {
		for range n {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = conn.Write([]byte("ping"))
			_ = conn.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(conn)
			conn.Close()
			if string(got) != "ping" {
				failed++
			}
		}
		return failed
	}
	const n = 50
	tests := []struct {
		name    string
		kill    bool
		viaEast func(failed int) int // flows east's gateway must have carried
	}{
		{name: "healthy: flows stay in west", viaEast: func(int) int { return 0 }},
		{name: "west's apps killed: flows cross to east", kill: true, viaEast: func(failed int) int { return n - failed }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.kill {
				for _, a := range apps {
					a.Close()
					<-a.Done()
				}
			}
			before := m.forwarded(t)
			failed := flows(n)
			east := int(m.forwarded(t) - before)
			t.Logf("%d of %d flows failed, %d crossed to east", failed, n, east)
			if failed != 0 || east != tt.viaEast(failed) {
				t.Errorf("%d flows failed (want 0), %d crossed to east (want %d)", failed, east, tt.viaEast(failed))
			}
		})
	}
}
