package proxy_test

import (
	"net/http"
	"testing"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// The HTTPRouteGroup is in SMI v1alpha4 form with list-form headers (a list
// of one-entry maps, all of which must hold).
const webSMI = `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: web-routes, namespace: shop}
spec:
  matches:
  - name: api
    pathRegex: /api
  - name: post-orders
    pathRegex: /orders
    methods: [POST]
  - name: canary
    headers:
    - x-canary: "true"
    - x-user: "beta-.*"
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 900}
  - {service: web-v2, weight: 100}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-special, namespace: shop}
spec:
  service: web
  matches:
  - {kind: HTTPRouteGroup, name: web-routes}
  backends:
  - {service: web-v3, weight: 1}
`

// webMesh starts v1, v2, v3 demo apps and a client-side proxy with a fixed
// port for shop/web:80; it returns the fixed port's URL and the proxy.
func webMesh(t *testing.T) (string, *proxy.Proxy) {
	t.Helper()
	in := smiInput(t, webSMI)
	in.Mode = spec.ModePermissive
	in.Services = append(in.Services, proxytest.Service("shop/web", 80, spec.ProtocolHTTP))
	for _, v := range []string{"web-v1", "web-v2", "web-v3"} {
		app := proxytest.App(t, demoapp.Options{Name: v, Listen: "on"})
		in.Services = append(in.Services, proxytest.Service("shop/"+v, 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, app.HTTPAddr, 80)))
	}
	cfg := proxytest.Compile(t, in, spec.Node{ID: "client"})
	p := startProxy(t, &proxy.Bootstrap{
		Admin:    "127.0.0.1:0",
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/web", Port: 80, Listen: "127.0.0.1:0"}}},
		Config:   cfg,
	})
	return "http://" + p.FixedAddr("shop/web", 80).String(), p
}

// TestSplitWeights: a 90/10 TrafficSplit lands within ±3 points over 4000
// requests that match no route.
func TestSplitWeights(t *testing.T) {
	base, _ := webMesh(t)
	c := client(t)
	const n = 4000
	counts := map[string]int{}
	for range n {
		code, name, body := do(t, c, mustReq(t, "GET", base+"/home", nil))
		if code != http.StatusOK {
			t.Fatalf("GET /home: %d %s", code, body)
		}
		counts[name]++
	}
	if counts["web-v3"] != 0 || counts["web-v1"]+counts["web-v2"] != n {
		t.Fatalf("unmatched requests reached other backends: %v", counts)
	}
	share := float64(counts["web-v1"]) / n * 100
	if share < 87 || share > 93 {
		t.Fatalf("web-v1 got %.1f%% of %d requests (want 90±3): %v", share, n, counts)
	}
	t.Logf("web-v1 %.2f%%, web-v2 %.2f%%", share, 100-share)
}

// TestRouteMatches: HTTPRouteGroup matches send requests to the split with
// matches (web-v3), everything else to the root split; first match wins.
func TestRouteMatches(t *testing.T) {
	base, _ := webMesh(t)
	c := client(t)
	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		special bool
	}{
		{"path prefix", "GET", "/api", nil, true},
		{"path anchored at start, longer path", "GET", "/api/v1/books", nil, true},
		{"path not anchored elsewhere", "GET", "/x/api", nil, false},
		{"method matches", "POST", "/orders", nil, true},
		{"method does not match", "GET", "/orders", nil, false},
		{"list-form headers all hold", "GET", "/home", map[string]string{"X-Canary": "true", "X-User": "beta-anna"}, true},
		{"list-form headers one missing", "GET", "/home", map[string]string{"X-Canary": "true"}, false},
		{"header regex is whole-value", "GET", "/home", map[string]string{"X-Canary": "truex", "X-User": "beta-anna"}, false},
		{"header name any case", "GET", "/home", map[string]string{"x-canary": "true", "x-user": "beta-b"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Several tries: the unmatched side is a 90/10 split, so one
			// request cannot tell v3 from luck; v3 only gets matched traffic.
			for range 20 {
				code, name, body := do(t, c, mustReq(t, tc.method, base+tc.path, tc.headers))
				if code != http.StatusOK {
					t.Fatalf("%s %s: %d %s", tc.method, tc.path, code, body)
				}
				if got := name == "web-v3"; got != tc.special {
					t.Fatalf("%s %s %v went to %s; want special route = %v", tc.method, tc.path, tc.headers, name, tc.special)
				}
			}
		})
	}
}
