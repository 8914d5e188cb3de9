package proxy

import (
	"net/netip"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// TestBuildTransparent: which original destinations map to which upstream
// service port, and which are left to pass through.
func TestBuildTransparent(t *testing.T) {
	books := spec.Key{Namespace: "shop", Name: "books"}
	v1 := spec.Key{Namespace: "shop", Name: "books-v1"}
	v2 := spec.Key{Namespace: "shop", Name: "books-v2"}
	db := spec.Key{Namespace: "db", Name: "mysql"}
	other := spec.Key{Namespace: "x", Name: "not-called"}
	web := spec.Port{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP, TargetPort: 8080}
	sql := spec.Port{Name: "sql", Port: 3306, Protocol: spec.ProtocolTCP}
	cfg := &spec.NodeConfig{Version: "v1", Mode: spec.ModePermissive,
		Upstreams: []spec.Upstream{
			{Service: books, Ports: []spec.Port{web}, ClusterIPs: []string{"10.96.0.10", "fd00::a"}, Default: []spec.WeightedCluster{{Service: v1, Weight: 900}, {Service: v2, Weight: 100}}},
			{Service: v2, Ports: []spec.Port{web}, Default: []spec.WeightedCluster{{Service: v2, Weight: 1000}}},
			{Service: db, Ports: []spec.Port{sql}, Default: []spec.WeightedCluster{{Service: db, Weight: 1000}}},
		},
		Clusters: []spec.Cluster{
			{Service: v1, Ports: []spec.Port{web}, Endpoints: []spec.Endpoint{{Addr: "10.0.0.1", Port: 8080, ServicePort: 80, Ready: true}}},
			{Service: v2, Ports: []spec.Port{web}, Endpoints: []spec.Endpoint{{Addr: "10.0.0.2", Port: 8080, ServicePort: 80, Ready: true}}},
			// A sidecar endpoint (ServicePort 0) serves every port at its target port.
			{Service: db, Ports: []spec.Port{sql}, Endpoints: []spec.Endpoint{{Addr: "10.0.1.1", Port: 4143, Ready: true}, {Addr: "db.example", Port: 3306, ServicePort: 3306}}},
			{Service: other, Ports: []spec.Port{web}, Endpoints: []spec.Endpoint{{Addr: "10.0.9.9", Port: 8080, ServicePort: 80}}},
		},
	}
	tab, err := cfg.Prepare()
	if err != nil {
		t.Fatal(err)
	}
	m := buildTransparent(cfg, tab)
	cases := []struct {
		name    string
		dst     string
		service string // "" = not mapped (passthrough)
		port    int32
	}{
		{"split leaf maps to the root, so the split decides", "10.0.0.1:8080", "shop/books", 80},
		{"a leaf that is an upstream itself maps to itself", "10.0.0.2:8080", "shop/books-v2", 80},
		{"sidecar endpoint at the port's target port", "10.0.1.1:3306", "db/mysql", 3306},
		{"sidecar endpoint's own inbound port is not a service port", "10.0.1.1:4143", "", 0},
		{"wrong port of a known address", "10.0.0.1:9090", "", 0},
		{"cluster no upstream routes to", "10.0.9.9:8080", "", 0},
		{"unknown address", "192.0.2.1:80", "", 0},
		{"ClusterIP at the service port", "10.96.0.10:80", "shop/books", 80},
		{"IPv6 ClusterIP at the service port", "[fd00::a]:80", "shop/books", 80},
		{"ClusterIP at the target port is not the service", "10.96.0.10:8080", "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fl := m[netip.MustParseAddrPort(c.dst)]
			switch {
			case c.service == "" && fl != nil:
				t.Errorf("%s mapped to %s:%d, want passthrough", c.dst, fl.fp.Service, fl.fp.Port)
			case c.service != "" && fl == nil:
				t.Errorf("%s not mapped, want %s:%d", c.dst, c.service, c.port)
			case fl != nil && (fl.fp.Service != c.service || fl.fp.Port != c.port || fl.key.String() != c.service):
				t.Errorf("%s mapped to %s:%d, want %s:%d", c.dst, fl.fp.Service, fl.fp.Port, c.service, c.port)
			}
		})
	}
	if len(m) != 5 {
		t.Errorf("%d destinations mapped, want 5: %v", len(m), m)
	}
}
