package proxy_test

import (
	"io"
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

// oneService puts a client sidecar with a fixed port in front of the app at
// appAddr serving shop/<name>:80, with the given policy for it. It returns
// the fixed port's base URL and the admin base URL.
func oneService(t *testing.T, name, appAddr string, pol proxy.Policy, in spec.Input) (string, string) {
	t.Helper()
	in.Mode = spec.ModePermissive
	in.Services = append(in.Services, proxytest.Service("shop/"+name, 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, appAddr, 80)))
	p := startProxy(t, &proxy.Bootstrap{
		Admin:    "127.0.0.1:0",
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/" + name, Port: 80, Listen: "127.0.0.1:0"}}},
		Services: []proxy.ServicePolicy{{Service: "shop/" + name, Policy: pol}},
		Config:   proxytest.Compile(t, in, spec.Node{ID: "client"}),
	})
	return "http://" + p.FixedAddr("shop/"+name, 80).String(), "http://" + p.AdminAddr().String()
}

func noBreaker() proxy.BreakerPolicy { return proxy.BreakerPolicy{ConsecutiveFailures: -1} }

// TestRetriesRecover: a backend failing exactly every 5th request (20 %) is
// hidden from the client by retries of idempotent requests; a POST is not
// retried unless marked retryable.
func TestRetriesRecover(t *testing.T) {
	app := proxytest.App(t, demoapp.Options{Name: "flaky", Listen: "on", FailEvery: 5})
	base, admin := oneService(t, "flaky", app.HTTPAddr.String(), proxy.Policy{
		Retry: proxy.RetryPolicy{Attempts: 2}, Breaker: noBreaker(),
	}, spec.Input{})
	c := client(t)
	const n = 500
	for i := range n {
		if code, _, body := do(t, c, mustReq(t, "GET", base+"/", nil)); code != 200 {
			t.Fatalf("GET %d: %d %s", i, code, body)
		}
	}
	mfs := proxytest.Scrape(t, admin+"/metrics")
	retries := proxytest.Sum(mfs, "causeway_retries_total", map[string]string{"service": "shop/flaky"})
	// Every 5th request the backend sees fails, retries included, and each
	// failure costs one retry: retries = (n + retries) / 5.
	seen := app.Requests()
	if int64(retries) != seen-n || seen/5 != int64(retries) {
		t.Fatalf("retries = %v, backend saw %d requests for %d sent; want retries = seen-%d = seen/5", retries, seen, n, n)
	}
	if got := proxytest.Sum(mfs, "causeway_responses_total", map[string]string{"classification": "success"}); got != n {
		t.Fatalf("successful responses = %v, want %d", got, n)
	}

	t.Run("POST is not retried, unless marked retryable", func(t *testing.T) {
		var failed, marked int
		for range 50 {
			code, _, _ := do(t, c, mustReq(t, "POST", base+"/", nil))
			if code != 200 {
				failed++
			}
			code, _, _ = do(t, c, mustReq(t, "POST", base+"/", map[string]string{"Causeway-Retryable": "true"}))
			if code != 200 {
				marked++
			}
		}
		if failed == 0 || marked != 0 {
			t.Fatalf("plain POST failures = %d (want > 0), retryable POST failures = %d (want 0)", failed, marked)
		}
	})
}

// TestRetryBudget: against a backend that always fails, retries stop at
// the budget's ratio of requests (no per-second floor here).
func TestRetryBudget(t *testing.T) {
	app := proxytest.App(t, demoapp.Options{Name: "down", Listen: "on", FailEvery: 1})
	base, admin := oneService(t, "down", app.HTTPAddr.String(), proxy.Policy{
		Retry:   proxy.RetryPolicy{Attempts: 3, BudgetRatio: 0.2, MinPerSecond: -1, TTL: proxy.Duration(time.Minute)},
		Breaker: noBreaker(),
	}, spec.Input{})
	c := client(t)
	const n = 200
	for range n {
		if code, _, _ := do(t, c, mustReq(t, "GET", base+"/", nil)); code != 503 {
			t.Fatalf("status %d, want the backend's 503", code)
		}
	}
	mfs := proxytest.Scrape(t, admin+"/metrics")
	retries := proxytest.Sum(mfs, "causeway_retries_total", nil)
	exhausted := proxytest.Sum(mfs, "causeway_retry_budget_exhausted_total", nil)
	if retries > 0.2*n+1 || retries < 0.2*n-3 {
		t.Fatalf("retries = %v, want about 20%% of %d requests", retries, n)
	}
	if exhausted == 0 {
		t.Fatalf("budget never reported exhausted")
	}
	if got := app.Requests(); got != int64(n)+int64(retries) {
		t.Fatalf("backend saw %d requests, want %d + %v retries", got, n, retries)
	}
}

// TestCircuitBreaker: the circuit of a cluster opens after the configured
// consecutive failures (requests then fail fast without reaching the
// backend) and closes after a successful probe.
func TestCircuitBreaker(t *testing.T) {
	var healthy atomic.Bool
	var hits atomic.Int64
	ln, srv := proxytest.HTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if !healthy.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	_ = srv
	base, admin := oneService(t, "brk", ln, proxy.Policy{
		Retry:   proxy.RetryPolicy{Attempts: -1},
		Breaker: proxy.BreakerPolicy{ConsecutiveFailures: 3, OpenFor: proxy.Duration(300 * time.Millisecond)},
	}, spec.Input{})
	c := client(t)
	state := func() float64 {
		return proxytest.Sum(proxytest.Scrape(t, admin+"/metrics"), "causeway_circuit_state", map[string]string{"cluster": "shop/brk:80"})
	}
	for i := range 3 {
		if code, _, _ := do(t, c, mustReq(t, "GET", base+"/", nil)); code != 503 {
			t.Fatalf("request %d: %d, want the backend's 503", i, code)
		}
	}
	if s := state(); s != 1 {
		t.Fatalf("circuit state after 3 failures = %v, want 1 (open)", s)
	}
	before := hits.Load()
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(resp.Header.Get("Causeway-Error"), "circuit open") || hits.Load() != before {
		t.Fatalf("open circuit: %d %q, backend hits %d->%d; want a fast 503 from the proxy", resp.StatusCode, resp.Header.Get("Causeway-Error"), before, hits.Load())
	}
	healthy.Store(true)
	time.Sleep(350 * time.Millisecond)
	if code, _, body := do(t, c, mustReq(t, "GET", base+"/", nil)); code != 200 {
		t.Fatalf("probe after OpenFor: %d %s", code, body)
	}
	if s := state(); s != 0 {
		t.Fatalf("circuit state after a good probe = %v, want 0 (closed)", s)
	}
}

// TestTimeout: a slow backend gets 504 at the service's timeout; a route
// match with a longer timeout waits for it.
//
// The backend's latency (2 s) sits far from both timeouts (100 ms, 20 s),
// so a machine that stalls for a second (CI runs every package at once on
// two cores) cannot move an answer across one: the 504 must come at or
// after the 100 ms timeout and before the backend could have answered.
func TestTimeout(t *testing.T) {
	const latency = 2 * time.Second
	app := proxytest.App(t, demoapp.Options{Name: "slow-app", Listen: "on", Latency: latency})
	in := spec.Input{
		Services: []spec.Service{proxytest.Service("shop/slow", 80, spec.ProtocolHTTP)},
		Routes: []spec.Route{{Key: proxytest.K("shop/slow-routes"), Kind: spec.RouteHTTP,
			Matches: []spec.Match{{Name: "patient", PathRegex: "/patient"}}}},
		Splits: []spec.Split{
			{Key: proxytest.K("shop/all"), Root: proxytest.K("shop/slow"), Backends: []spec.Backend{{Service: proxytest.K("shop/slow-app"), Weight: 1000}}},
			{Key: proxytest.K("shop/patient"), Root: proxytest.K("shop/slow"), Backends: []spec.Backend{{Service: proxytest.K("shop/slow-app"), Weight: 1000}},
				Matches: []spec.RouteRef{{Kind: spec.RouteHTTP, Key: proxytest.K("shop/slow-routes")}}},
		},
	}
	in.Mode = spec.ModePermissive
	in.Services = append(in.Services, proxytest.Service("shop/slow-app", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, app.HTTPAddr, 80)))
	p := startProxy(t, &proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/slow", Port: 80, Listen: "127.0.0.1:0"}}},
		Services: []proxy.ServicePolicy{{Service: "shop/slow",
			Policy: proxy.Policy{Timeout: proxy.Duration(100 * time.Millisecond)},
			Routes: []proxy.RoutePolicy{{Match: "patient", Timeout: proxy.Duration(20 * time.Second)}}}},
		Config: proxytest.Compile(t, in, spec.Node{ID: "client"}),
	})
	fixed := p.FixedAddr("shop/slow", 80).String()
	c := client(t)
	cases := []struct {
		path     string
		want     int
		min, max time.Duration
	}{
		{"/hurry", http.StatusGatewayTimeout, 100 * time.Millisecond, latency - 100*time.Millisecond},
		{"/patient", http.StatusOK, latency, 20 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			start := time.Now()
			code, _, body := do(t, c, mustReq(t, "GET", "http://"+fixed+tc.path, nil))
			if took := time.Since(start); code != tc.want || took < tc.min || took > tc.max {
				t.Fatalf("GET %s: %d after %v (%s); want %d in %v..%v", tc.path, code, took, body, tc.want, tc.min, tc.max)
			}
		})
	}
}

// TestClientCancelNotCounted: clients that hang up on requests in flight
// (every load generator at the end of a run) are not the backend's
// failures: the circuit stays closed.
func TestClientCancelNotCounted(t *testing.T) {
	app := proxytest.App(t, demoapp.Options{Name: "slowish", Listen: "on", Latency: 300 * time.Millisecond})
	base, admin := oneService(t, "slowish", app.HTTPAddr.String(), proxy.Policy{
		Retry:   proxy.RetryPolicy{Attempts: -1},
		Breaker: proxy.BreakerPolicy{ConsecutiveFailures: 2, OpenFor: proxy.Duration(time.Minute)},
	}, spec.Input{})
	impatient := client(t)
	impatient.Timeout = 30 * time.Millisecond
	for range 5 {
		if resp, err := impatient.Get(base + "/"); err == nil {
			resp.Body.Close()
			t.Fatalf("request finished before the client's timeout")
		}
	}
	mfs := proxytest.Scrape(t, admin+"/metrics")
	if s := proxytest.Sum(mfs, "causeway_circuit_state", map[string]string{"cluster": "shop/slowish:80"}); s != 0 {
		t.Fatalf("circuit state %v after client cancellations, want 0 (closed)", s)
	}
	if code, _, body := do(t, client(t), mustReq(t, "GET", base+"/", nil)); code != 200 {
		t.Fatalf("after cancellations: %d %s", code, body)
	}
}

// TestConnectionCap: maxConnsPerHost bounds the connections to an endpoint;
// requests beyond it wait for one instead of failing.
func TestConnectionCap(t *testing.T) {
	// HTTP/1.1 carries one request at a time per connection, so requests
	// in the handler at once never exceed the connections open.
	var inflight, peak atomic.Int64
	addr, _ := proxytest.HTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inflight.Add(-1)
		w.Write([]byte("ok"))
	}))
	base, _ := oneService(t, "capped", addr, proxy.Policy{MaxConnsPerHost: 2}, spec.Input{})
	c := client(t)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(base + "/")
			if err != nil {
				failed.Add(1)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 || peak.Load() > 2 {
		t.Fatalf("failed %d, peak concurrent requests at the backend %d; want 0 and at most 2", failed.Load(), peak.Load())
	}
}
