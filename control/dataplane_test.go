package control_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// load sends GETs from 4 goroutines until stopped, counting answers by the
// app that gave them and every failure.
type load struct {
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	sent    atomic.Int64
	failed  atomic.Int64
	mu      sync.Mutex
	byApp   map[string]int
	epoch   int // bumped by counts: answers to requests sent before it are not counted
	lastErr string
}

func startLoad(url string) *load {
	l := &load{stop: make(chan struct{}), byApp: map[string]int{}}
	for range 4 {
		l.wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.sent.Add(1)
				l.mu.Lock()
				epoch := l.epoch
				l.mu.Unlock()
				resp, err := c.Get(url)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					l.lastErr = err.Error()
				} else if epoch == l.epoch {
					l.byApp[resp.Header.Get(demoapp.HeaderName)]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// counts returns and resets the per-app counts; from now on only answers
// to requests sent after this call are counted.
func (l *load) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.byApp
	l.byApp = map[string]int{}
	l.epoch++
	return c
}

// answered returns how many answers have been counted since counts.
func (l *load) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sum(l.byApp)
}

// end stops the load and waits for it; calling it twice is fine.
func (l *load) end() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// TestDataPlaneSurvivesControlPlaneRestart drives a real proxy from the
// control plane under steady load: a split shift moves traffic; the control
// plane stopped fails no request; a new one on the same address resyncs
// the proxy and its next shift moves traffic again; the SMI metrics API
// reads the proxy's real counters.
func TestDataPlaneSurvivesControlPlaneRestart(t *testing.T) {
	v1 := proxytest.App(t, demoapp.Options{Name: "web-v1", Listen: "on"})
	v2 := proxytest.App(t, demoapp.Options{Name: "web-v2", Listen: "on"})
	mesh := func(w1, w2 int64) spec.Input {
		return spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{
			proxytest.Service("shop/web", 80, spec.ProtocolHTTP),
			proxytest.Service("shop/web-v1", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, v1.HTTPAddr, 80)),
			proxytest.Service("shop/web-v2", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, v2.HTTPAddr, 80)),
		}, Splits: []spec.Split{{Key: proxytest.K("shop/web-split"), Root: proxytest.K("shop/web"), Backends: []spec.Backend{
			{Service: proxytest.K("shop/web-v1"), Weight: w1}, {Service: proxytest.K("shop/web-v2"), Weight: w2}}}}}
	}

	srv1, addr := Start(t, "", control.Options{})
	srv1.Publish(Snapshot(t, mesh(1000, 0)), nil)

	b := &proxy.Bootstrap{Admin: "127.0.0.1:0", Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{
		{Service: "shop/web", Port: 80, Listen: "127.0.0.1:0"}}}}
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	px := proxy.New(b, proxy.Options{Logger: Quiet})
	if err := px.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	node := spec.Node{ID: "client-0"}
	cs, err := configsource.New(configsource.Options{Addr: addr, Node: node, AdminAddress: px.AdminAddr().String(),
		Apply: px.Apply, Logger: Quiet, Backoff: configsource.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = cs.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	synced(t, srv1, node, srv1.Snapshot())

	l := startLoad("http://" + px.FixedAddr("shop/web", 80).String() + "/")
	defer l.end()
	settle := func() map[string]int {
		// Requests routed before the change may still be in flight, for
		// any time on a loaded machine: count only answers to requests
		// sent from now on, until there are enough of them to judge.
		l.counts()
		for deadline := time.Now().Add(30 * time.Second); l.answered() < 50 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return l.counts()
	}
	steps := []struct {
		name string
		do   func(t *testing.T)
		// only says which apps may answer once the step is done.
		only []string
	}{
		{"serving v1", func(*testing.T) {}, []string{"web-v1"}},
		{"shift to v2", func(t *testing.T) {
			srv1.Publish(Snapshot(t, mesh(0, 1000)), nil)
			synced(t, srv1, node, srv1.Snapshot())
		}, []string{"web-v2"}},
		{"control plane stopped: traffic keeps flowing on the last config", func(t *testing.T) {
			Stop(t, srv1)
			Eventually(t, "client notices", func() bool { return !cs.Status().Connected })
		}, []string{"web-v2"}},
		{"new control plane on the same address: resync and shift back", func(t *testing.T) {
			srv2, _ := Start(t, addr, control.Options{})
			srv2.Publish(Snapshot(t, mesh(1000, 0)), nil)
			synced(t, srv2, node, srv2.Snapshot())
			checkMetrics(t, srv2)
		}, []string{"web-v1"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			got := settle()
			total := 0
			for _, app := range st.only {
				total += got[app]
			}
			if total == 0 || total != sum(got) {
				t.Errorf("answers %v, want only %v", got, st.only)
			}
		})
	}
	l.end()
	if f := l.failed.Load(); f != 0 {
		t.Fatalf("%d of %d requests failed; last: %s", f, l.sent.Load(), l.lastErr)
	}
	t.Logf("%d requests across a split shift, a control-plane stop and a restart: 0 failed", l.sent.Load())
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// checkMetrics reads the real proxy's /metrics through the SMI API: the
// split's backends must show the traffic the load sent.
func checkMetrics(t *testing.T, srv *control.Server) {
	t.Helper()
	agg := &metrics.Aggregator{Source: &metrics.HTTPSource{Targets: rest.ProxyTargets(srv)}}
	if err := agg.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	v, _ := agg.View()
	kind, _ := metrics.LookupKind("trafficsplits")
	got, err := metrics.Query{View: v, Snapshot: srv.Snapshot()}.Get(kind, "shop", "web-split")
	if err != nil {
		t.Fatal(err)
	}
	var served int64
	for _, it := range got.(*metrics.TrafficMetricsList).Items {
		served += it.Get("success_count").Value.Value()
	}
	if served == 0 {
		t.Fatalf("the SMI API saw no successful requests through the split; scrape view %+v", v)
	}
}
