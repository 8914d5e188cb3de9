package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/gateway"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	cwapi "github.com/causeway-mesh/causeway/identity/workloadapi"
	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

var quiet = slog.New(slog.DiscardHandler)

// Ports of shop/books, the service east exports.
const (
	portHTTP = 80
	portGRPC = 9090
	portTCP  = 7000
	portUDP  = 5353
)

var (
	westTD   = spiffeid.RequireTrustDomainFromString("west.test")
	eastTD   = spiffeid.RequireTrustDomainFromString("east.test")
	farTD    = spiffeid.RequireTrustDomainFromString("far.test") // linked to nobody
	booksKey = spec.Key{Namespace: "shop", Name: "books"}
	importK  = spec.Key{Namespace: "shop", Name: "books-east"} // west's name for it (DESIGN §7)
	directK  = spec.Key{Namespace: "shop", Name: "books-direct"}
)

func wid(td spiffeid.TrustDomain, ns, sa string) spiffeid.ID {
	return spiffeid.RequireFromPath(td, "/ns/"+ns+"/sa/"+sa)
}

// multi is two clusters on loopback, each with its own CA and trust domain,
// linked the way federation links them: every Workload API of one serves the
// other's bundle as federated. East runs an east-west gateway and
// destination sidecars for shop/books (exported) in front of one demo app;
// shop/secret has a sidecar too but is not exported. West's callers are
// client sidecars whose config imports shop/books as shop/books-east, one
// endpoint: east's gateway.
type multi struct {
	west, east, far *ca.CA
	westFed         *bundle.Set // east's bundle, as west's workloads get it
	eastFed         *bundle.Set // west's bundle, as east's workloads get it
	app             *demoapp.Server
	eastIn          spec.Input
	dests           []*proxy.Proxy
	gw              *gateway.Gateway
	gwID            spiffeid.ID
}

// source gets an X509Source from a fresh Workload API of c that gives this
// process the identity ns/sa and serves fed's bundles as federated.
func source(t testing.TB, c *ca.CA, ns, sa string, fed cwapi.FederatedBundles) *workloadapi.X509Source {
	t.Helper()
	addr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, ns+"/"+sa, ""), Federated: fed})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		t.Fatalf("X509Source from %s: %v", addr, err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

func newMulti(t testing.TB, dests int) *multi {
	t.Helper()
	m := &multi{
		west: identitytest.NewCA(t, westTD, nil),
		east: identitytest.NewCA(t, eastTD, nil),
		far:  identitytest.NewCA(t, farTD, nil),
	}
	m.westFed = bundle.NewSet(m.east.Bundle())
	m.eastFed = bundle.NewSet(m.west.Bundle())
	m.app = proxytest.App(t, demoapp.Options{Name: "books-east", Listen: "on", TCPEcho: "on", UDPEcho: "on"})
	booksID := wid(eastTD, "shop", "books")
	webID := wid(westTD, "shop", "web")
	books := spec.Service{Key: booksKey, Identities: []spiffeid.ID{booksID}, Export: true, Ports: []spec.Port{
		{Name: "http", Port: portHTTP, Protocol: spec.ProtocolHTTP, TargetPort: proxytest.Port(t, m.app.HTTPAddr)},
		{Name: "grpc", Port: portGRPC, Protocol: spec.ProtocolGRPC, TargetPort: proxytest.Port(t, m.app.HTTPAddr)},
		{Name: "tcp", Port: portTCP, Protocol: spec.ProtocolTCP, TargetPort: proxytest.Port(t, m.app.TCPAddr)},
		{Name: "udp", Port: portUDP, Protocol: spec.ProtocolUDP, TargetPort: proxytest.Port(t, m.app.UDPAddr)},
	}}
	secret := spec.Service{Key: spec.Key{Namespace: "shop", Name: "secret"}, Identities: []spiffeid.ID{booksID},
		Ports: []spec.Port{{Name: "http", Port: portHTTP, Protocol: spec.ProtocolHTTP, TargetPort: proxytest.Port(t, m.app.HTTPAddr)}}}
	m.eastIn = spec.Input{TrustDomain: eastTD.Name(), Mode: spec.ModeStrict,
		Services: []spec.Service{books, secret},
		Routes: []spec.Route{
			{Key: spec.Key{Namespace: "shop", Name: "books-all"}, Kind: spec.RouteHTTP, Matches: []spec.Match{{Name: "all"}}},
			{Key: spec.Key{Namespace: "shop", Name: "books-tcp"}, Kind: spec.RouteTCP},
		},
		// The TrafficTarget admits west's shop/web (what adapters/smi makes
		// of causeway.dev/source-trust-domains: west.test), nobody else.
		Policies: []spec.AccessPolicy{{Key: spec.Key{Namespace: "shop", Name: "web-reads-books"}, Destination: booksID,
			Sources: []spiffeid.ID{webID},
			Rules: []spec.AccessRule{
				{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: spec.Key{Namespace: "shop", Name: "books-all"}}},
				{Route: spec.RouteRef{Kind: spec.RouteTCP, Key: spec.Key{Namespace: "shop", Name: "books-tcp"}}},
			}}},
	}
	for range dests {
		src := source(t, m.east, "shop", "books", m.eastFed)
		p := startProxy(t, &proxy.Bootstrap{
			Admin:   "127.0.0.1:0",
			Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
			Config: proxytest.Compile(t, m.eastIn, spec.Node{ID: "books-" + strconv.Itoa(len(m.dests)), Identity: booksID,
				Services: []spec.Key{booksKey, secret.Key}}),
		}, proxy.Options{SVIDs: src, Bundles: src})
		m.dests = append(m.dests, p)
	}
	for i := range m.eastIn.Services {
		for _, d := range m.dests {
			ep := proxytest.SidecarEndpoint(t, d.InboundAddr())
			ep.Identity = booksID
			m.eastIn.Services[i].Endpoints = append(m.eastIn.Services[i].Endpoints, ep)
		}
	}
	m.gwID = wid(eastTD, "causeway-system", "causeway-gateway")
	gsrc := source(t, m.east, "causeway-system", "causeway-gateway", m.eastFed)
	gw, err := gateway.New(gateway.Options{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", SVIDs: gsrc, Bundles: gsrc,
		BundlesUpdated: gsrc.Updated(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	if err := gw.Apply(m.gatewayConfig(t, m.eastIn)); err != nil {
		t.Fatal(err)
	}
	m.gw = gw
	return m
}

// gatewayConfig compiles in for the gateway's node (no Services).
func (m *multi) gatewayConfig(t testing.TB, in spec.Input) *spec.NodeConfig {
	t.Helper()
	return proxytest.Compile(t, in, spec.Node{ID: "east-gateway", Identity: m.gwID})
}

// westInput is west's model: shop/books imported through east's gateway as
// shop/books-east, and, for comparison, shop/books-direct whose endpoints
// are east's destination sidecars themselves (no gateway).
func (m *multi) westInput(t testing.TB) spec.Input {
	t.Helper()
	var books spec.Service
	for _, s := range m.eastIn.Services {
		if s.Key == booksKey {
			books = s
		}
	}
	gw := m.gw.Addr().(*net.TCPAddr)
	imp := spec.Service{Key: importK, Ports: books.Ports, Identities: books.Identities, Endpoints: []spec.Endpoint{{
		Addr: gw.IP.String(), Port: int32(gw.Port), Ready: true, Gateway: m.gwID, Remote: booksKey}}}
	direct := spec.Service{Key: directK, Ports: books.Ports, Identities: books.Identities, Endpoints: books.Endpoints}
	return spec.Input{TrustDomain: westTD.Name(), Mode: spec.ModeStrict, Services: []spec.Service{imp, direct}}
}

// caller is a west client sidecar for shop/<sa> (SVID from west's Workload
// API, east's bundle federated) with fixed ports for every port of
// shop/books-east and shop/books-direct.
func (m *multi) caller(t testing.TB, td *ca.CA, fed cwapi.FederatedBundles, sa string) *proxy.Proxy {
	t.Helper()
	src := source(t, td, "shop", sa, fed)
	var fixed []proxy.FixedPort
	for _, svc := range []spec.Key{importK, directK} {
		for _, p := range []int32{portHTTP, portGRPC, portTCP, portUDP} {
			fixed = append(fixed, proxy.FixedPort{Service: svc.String(), Port: p, Listen: "127.0.0.1:0"})
		}
	}
	return startProxy(t, &proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: fixed},
		Config:   proxytest.Compile(t, m.westInput(t), spec.Node{ID: "west-" + sa, Identity: wid(td.TrustDomain(), "shop", sa)}),
	}, proxy.Options{SVIDs: src, Bundles: src})
}

func startProxy(t testing.TB, b *proxy.Bootstrap, opts proxy.Options) *proxy.Proxy {
	t.Helper()
	if err := b.Validate(); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	opts.Logger = quiet
	p := proxy.New(b, opts)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// refused scrapes the gateway's refusal counter for reason.
func (m *multi) refused(t testing.TB, reason string) float64 {
	t.Helper()
	return proxytest.Sum(proxytest.Scrape(t, "http://"+m.gw.AdminAddr().String()+"/metrics"),
		"causeway_gateway_refused_total", map[string]string{"reason": reason})
}

func (m *multi) forwarded(t testing.TB) float64 {
	t.Helper()
	return proxytest.Sum(proxytest.Scrape(t, "http://"+m.gw.AdminAddr().String()+"/metrics"),
		"causeway_gateway_connections_total", nil)
}

// httpClient is a keep-alive client closed at cleanup.
func httpClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t testing.TB, c *http.Client, url string) (int, []byte) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp.StatusCode, b
}

// inboundFlows is a destination sidecar's count of inbound TCP flows.
func inboundFlows(t testing.TB, admin net.Addr) float64 {
	t.Helper()
	return proxytest.Sum(proxytest.Scrape(t, "http://"+admin.String()+"/metrics"),
		"causeway_tcp_connections_opened_total", map[string]string{"direction": "inbound"})
}
