package metrics_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/control/metrics/metricstest"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

func TestQuantile(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	// 100 observations: 50 in (0, .01], 40 in (.01, .1], 10 in (.1, 1].
	b := []metrics.Bucket{{.01, 50}, {.1, 90}, {1, 100}, {inf, 100}}
	cases := []struct {
		name    string
		q       float64
		buckets []metrics.Bucket
		want    float64
		ok      bool
	}{
		{"p50 at a bucket edge", .50, b, .01, true},
		{"p90 at a bucket edge", .90, b, .1, true},
		{"p99 interpolated", .99, b, .1 + .9*9/10, true},
		{"p25 inside the first bucket", .25, b, .005, true},
		{"rank in +Inf gives the highest finite bound", .99, []metrics.Bucket{{.01, 10}, {inf, 20}}, .01, true},
		{"no observations", .5, []metrics.Bucket{{.01, 0}, {inf, 0}}, 0, false},
		{"no buckets", .5, nil, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, ok := metrics.Quantile(tc.q, tc.buckets)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
				t.Fatalf("Quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestParseRealExposition reads what client_golang serves for the proxy's
// series over HTTP and checks the sums the API is built on.
func TestParseRealExposition(t *testing.T) {
	p := metricstest.NewProxy(t)
	p.Serve("shop/api", "shop/api-v1", 200, 30, 3*time.Millisecond)
	p.Serve("shop/api", "shop/api-v1", 503, 10, 40*time.Millisecond)
	p.Serve("shop/api", "shop/api-v2", 201, 5, 300*time.Millisecond)
	node := spec.Node{ID: "web-0"}
	src := &metrics.HTTPSource{Targets: func() []metrics.Target { return []metrics.Target{{Node: node, URL: p.URL()}} }}
	scrapes, err := src.Scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(scrapes) != 1 || scrapes[0].Node.ID != "web-0" {
		t.Fatalf("scrapes = %+v", scrapes)
	}
	cases := []struct {
		backend          string
		success, failure float64
		p50              float64
	}{
		{"shop/api-v1", 30, 10, .0025 + .0025*(20-0)/30},
		{"shop/api-v2", 5, 0, .25 + .25*(2.5-0)/5},
	}
	for _, tc := range cases {
		t.Run(tc.backend, func(t *testing.T) {
			f, ok := scrapes[0].Flows[metrics.FlowKey{Direction: "outbound", Service: "shop/api", Backend: tc.backend}]
			if !ok {
				t.Fatalf("no flow for %s in %v", tc.backend, scrapes[0].Flows)
			}
			if f.Success != tc.success || f.Failure != tc.failure {
				t.Errorf("success/failure = %v/%v, want %v/%v", f.Success, f.Failure, tc.success, tc.failure)
			}
			if got, _ := metrics.Quantile(.5, f.Latency); math.Abs(got-tc.p50) > 1e-9 {
				t.Errorf("p50 = %v, want %v", got, tc.p50)
			}
		})
	}
}

func TestScrapeReportsUnreachableProxy(t *testing.T) {
	p := metricstest.NewProxy(t)
	p.Serve("shop/api", "shop/api", 200, 1, time.Millisecond)
	src := &metrics.HTTPSource{Targets: func() []metrics.Target {
		return []metrics.Target{{Node: spec.Node{ID: "up"}, URL: p.URL()}, {Node: spec.Node{ID: "gone"}, URL: "http://127.0.0.1:1/metrics"}}
	}}
	scrapes, err := src.Scrape(context.Background())
	if err == nil || !strings.Contains(err.Error(), "proxy gone") {
		t.Fatalf("error %v does not name the unreachable proxy", err)
	}
	if len(scrapes) != 1 || scrapes[0].Node.ID != "up" {
		t.Fatalf("the reachable proxy's scrape was lost: %+v", scrapes)
	}
}

// TestViewIsAWindow: counts are the difference between the latest scrape
// and the one about a window back, and survive a proxy restart.
func TestViewIsAWindow(t *testing.T) {
	p := metricstest.NewProxy(t)
	node := spec.Node{ID: "web-0", Services: []spec.Key{K("shop/web")}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agg := &metrics.Aggregator{Window: 30 * time.Second, Now: func() time.Time { return now },
		Source: &metrics.HTTPSource{Targets: func() []metrics.Target { return []metrics.Target{{Node: node, URL: p.URL()}} }}}
	restarted := metricstest.NewProxy(t)
	key := metrics.FlowKey{Direction: "outbound", Service: "shop/api", Backend: "shop/api"}
	steps := []struct {
		name       string
		advance    time.Duration
		serve      int
		wantWindow time.Duration
		wantCount  float64
	}{
		{"first scrape: counts since start, no window", 0, 100, 0, 100},
		{"10s later", 10 * time.Second, 20, 10 * time.Second, 20},
		{"40s: baseline is the scrape a window back", 30 * time.Second, 30, 30 * time.Second, 30},
		{"50s: same baseline, nothing new", 10 * time.Second, 0, 40 * time.Second, 30},
		{"proxy restarted: its counts since restart", 10 * time.Second, 7, 50 * time.Second, 7},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			now = now.Add(st.advance)
			if strings.HasPrefix(st.name, "proxy restarted") {
				p = restarted // same node, counters from zero
			}
			p.Serve("shop/api", "shop/api", 200, st.serve, time.Millisecond)
			if err := agg.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			v, ok := agg.View()
			if !ok || v.Window != st.wantWindow {
				t.Fatalf("window = %v (ok %v), want %v", v.Window, ok, st.wantWindow)
			}
			if got := v.Nodes[0].Flows[key].Success; got != st.wantCount {
				t.Fatalf("success over the window = %v, want %v", got, st.wantCount)
			}
		})
	}
}

// TestInboundSeriesAreNotCountedTwice: the callee's inbound series describe
// the same requests as the caller's outbound ones.
func TestInboundSeriesAreNotCountedTwice(t *testing.T) {
	flow := metrics.Flow{Success: 10, Latency: []metrics.Bucket{{UpperBound: .01, Count: 10}, {UpperBound: math.Inf(1), Count: 10}}}
	snap := MustBuild(spec.Input{TrustDomain: TrustDomain, Services: []spec.Service{HTTPService("shop/api", 80, "127.0.0.1:8080")}})
	v := metrics.View{Window: 10 * time.Second, Nodes: []metrics.Scrape{
		{Node: spec.Node{ID: "web-0"}, Flows: map[metrics.FlowKey]metrics.Flow{{Direction: "outbound", Service: "shop/api", Backend: "shop/api"}: flow}},
		{Node: spec.Node{ID: "api-0", Services: []spec.Key{K("shop/api")}}, Flows: map[metrics.FlowKey]metrics.Flow{
			{Direction: "inbound", Service: "shop/api", Backend: "app"}:      flow,
			{Direction: "inbound", Service: "shop/api", Backend: "shop/api"}: flow, // even if labelled like outbound
		}},
	}}
	kinds := []string{"services", "namespaces"}
	for _, kn := range kinds {
		t.Run(kn, func(t *testing.T) {
			k, _ := metrics.LookupKind(kn)
			ns, name := "shop", "api"
			if kn == "namespaces" {
				ns, name = "", "shop"
			}
			got, err := metrics.Query{View: v, Snapshot: snap}.Get(k, ns, name)
			if err != nil {
				t.Fatal(err)
			}
			if n := got.(*metrics.TrafficMetrics).Get("success_count").Value.Value(); n != 10 {
				t.Fatalf("success_count = %d, want 10 (outbound only)", n)
			}
		})
	}
}
