package rest_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/control/metrics/metricstest"
	"github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.json from the current output")

// splitMesh is controltest.Mesh plus two versions of api split 90/10.
func splitMesh() spec.Input {
	in := Mesh(Web)
	v1 := HTTPService("shop/api-v1", 8080, "127.0.0.1:18082")
	v1.Identities = []spiffeid.ID{API}
	v2 := HTTPService("shop/api-v2", 8080, "127.0.0.1:18083")
	v2.Identities = []spiffeid.ID{API}
	in.Services = append(in.Services, v1, v2)
	in.Splits = []spec.Split{Split("shop/api-split", "shop/api", "shop/api-v1", 90, "shop/api-v2", 10)}
	return in
}

// mesh starts a control plane with two connected proxies whose admin
// servers expose real Prometheus text, and traffic over a 30s window.
func mesh(t *testing.T) http.Handler {
	t.Helper()
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	srv, addr := Start(t, "", control.Options{Now: now})
	snap := Snapshot(t, splitMesh())
	srv.Publish(snap, nil)

	web, api := metricstest.NewProxy(t), metricstest.NewProxy(t)
	for _, p := range []struct {
		node  spec.Node
		admin string
	}{{WebNode, web.Addr()}, {APINode, api.Addr()}} {
		c, err := configsource.New(configsource.Options{Addr: addr, Node: p.node, AdminAddress: p.admin, Logger: Quiet,
			Apply: func(*spec.NodeConfig) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		want := spec.Compile(snap, p.node).Version
		WaitFor(t, srv, p.node.ID+" in sync", func() bool {
			st, _ := srv.Proxy(p.node.ID)
			return st.LastAckedVersion == want
		})
	}
	// A bad update after the good one: served version stays, diagnostics show.
	in := splitMesh()
	in.Splits[0].Backends[1].Weight = -1
	bad, diags := spec.Build(in, spec.BuildOptions{})
	srv.Publish(bad, diags)

	agg := &metrics.Aggregator{Window: 30 * time.Second, Now: func() time.Time { return clock },
		Source: &metrics.HTTPSource{Targets: rest.ProxyTargets(srv)}}
	if err := agg.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(30 * time.Second)
	web.Serve("shop/api", "shop/api-v1", 200, 88, 3*time.Millisecond)
	web.Serve("shop/api", "shop/api-v1", 503, 2, 40*time.Millisecond)
	web.Serve("shop/api", "shop/api-v2", 200, 10, 30*time.Millisecond)
	api.Serve("shop/db", "shop/db", 200, 60, time.Millisecond)
	if err := agg.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return (&rest.API{Control: srv, Metrics: agg, Logger: Quiet}).Handler()
}

// unstable matches what changes from run to run: loopback ports and the
// order in which two streams took nonces.
var unstable = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`127\.0\.0\.1:\d+`), "127.0.0.1:PORT"},
	{regexp.MustCompile(`"lastSentNonce": "\d+"`), `"lastSentNonce": "NONCE"`},
}

func TestGolden(t *testing.T) {
	h := mesh(t)
	cases := []struct {
		name string
		path string
		code int
	}{
		{"services", "/api/v1/services", 200},
		{"routes", "/api/v1/routes", 200},
		{"splits", "/api/v1/splits", 200},
		{"policies", "/api/v1/policies", 200},
		{"snapshot", "/api/v1/snapshot", 200},
		{"diagnostics", "/api/v1/diagnostics", 200},
		{"proxies", "/api/v1/proxies", 200},
		{"proxy", "/api/v1/proxies/api-0", 200},
		{"proxy-missing", "/api/v1/proxies/nope", 404},
		{"smi-resources", "/apis/metrics.smi-spec.io/v1alpha1/", 200},
		{"smi-namespaces", "/apis/metrics.smi-spec.io/v1alpha1/namespaces", 200},
		{"smi-namespace", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop", 200},
		{"smi-services", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services", 200},
		{"smi-service", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/api-v1", 200},
		{"smi-service-edges-caller", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/api/edges", 200},
		{"smi-service-edges-callee", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/api-v1/edges", 200},
		{"smi-trafficsplit", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/trafficsplits/api-split", 200},
		{"smi-trafficsplits", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/trafficsplits", 200},
		{"smi-namespace-missing", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/nope", 404},
		{"smi-edges-of-trafficsplit", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/trafficsplits/api-split/edges", 404},
		{"unknown-path", "/api/v2/services", 404},
		{"smi-unknown-service", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services/nope", 404},
		{"smi-unsupported-kind", "/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/deployments/web", 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.code {
				t.Fatalf("GET %s = %d, want %d: %s", tc.path, res.StatusCode, tc.code, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			for _, u := range unstable {
				body = u.re.ReplaceAll(body, []byte(u.with))
			}
			golden := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, body, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			var g, w any
			if err := json.Unmarshal(body, &g); err != nil {
				t.Fatalf("response is not JSON: %v\n%s", err, body)
			}
			if err := json.Unmarshal(want, &w); err != nil {
				t.Fatalf("%s: %v", golden, err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("GET %s differs from %s (run with -update to accept):\n%s", tc.path, golden, body)
			}
		})
	}
}

// TestSMIShapeDecodesWithSDK reads the golden answers back with
// smi-sdk-go's own types: a client built on the SDK understands them.
func TestSMIShapeDecodesWithSDK(t *testing.T) {
	cases := []struct {
		file    string
		list    bool
		success int64
	}{
		{"smi-service.json", false, 88},
		{"smi-service-edges-callee.json", true, 88},
		{"smi-namespace.json", false, 158},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var tm *smimetrics.TrafficMetrics
			if tc.list {
				var l smimetrics.TrafficMetricsList
				if err := json.Unmarshal(b, &l); err != nil {
					t.Fatal(err)
				}
				if len(l.Items) != 1 {
					t.Fatalf("%d items", len(l.Items))
				}
				tm = l.Items[0]
			} else {
				tm = &smimetrics.TrafficMetrics{}
				if err := json.Unmarshal(b, tm); err != nil {
					t.Fatal(err)
				}
			}
			if tm.Kind != "TrafficMetrics" || tm.Interval == nil || tm.Window.Duration != 30*time.Second {
				t.Errorf("decoded %+v", tm)
			}
			m := tm.Get("success_count")
			if m == nil || m.Value.Value() != tc.success {
				t.Errorf("success_count = %v, want %d", m, tc.success)
			}
		})
	}
}
