package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/adapters/smi"
	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// source is what a proxy takes its identity from.
type source interface {
	x509svid.Source
	x509bundle.Source
}

// booksMesh: shop/books behind a server sidecar, in strict mode, with one
// TrafficTarget letting shop/web GET /books*. Client sidecars are started
// per caller.
type booksMesh struct {
	td     spiffeid.TrustDomain
	in     spec.Input
	server *proxy.Proxy
}

const booksSMI = `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: books-routes, namespace: shop}
spec:
  matches:
  - {name: read, pathRegex: /books, methods: [GET]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-reads-books, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: books, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: web, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: books-routes, matches: [read]}
`

func id(t testing.TB, td spiffeid.TrustDomain, sa string) spiffeid.ID {
	t.Helper()
	i, err := spec.Identity(td.String(), "shop", sa)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func newBooksMesh(t *testing.T, td spiffeid.TrustDomain, books source) *booksMesh {
	return newBooksMeshMode(t, td, books, spec.ModeStrict)
}

func newBooksMeshMode(t *testing.T, td spiffeid.TrustDomain, books source, mode spec.Mode) *booksMesh {
	t.Helper()
	app := proxytest.App(t, demoapp.Options{Name: "books", Listen: "on"})
	objs, diags := manifest.Parse("books.yaml", []byte(booksSMI))
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	in, diags := smi.Translate(objs, smi.Options{TrustDomain: td.String()})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	in.TrustDomain, in.Mode = td.String(), mode
	booksID := id(t, td, "books")
	svc := spec.Service{Key: proxytest.K("shop/books"), Identities: []spiffeid.ID{booksID}, Ports: []spec.Port{
		{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP, TargetPort: proxytest.Port(t, app.HTTPAddr)}}}
	in.Services = append(in.Services, svc)
	m := &booksMesh{td: td, in: in}
	m.server = start(t, &proxy.Bootstrap{
		Admin:   "127.0.0.1:0",
		Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Config:  proxytest.Compile(t, in, spec.Node{ID: "books", Identity: booksID, Services: []spec.Key{svc.Key}}),
	}, books)
	ep := proxytest.SidecarEndpoint(t, m.server.InboundAddr())
	ep.Identity = booksID
	m.in.Services[len(m.in.Services)-1].Endpoints = []spec.Endpoint{ep}
	return m
}

// caller starts a client sidecar for shop/<sa> and returns the address of its
// fixed port for books:80.
func (m *booksMesh) caller(t *testing.T, sa string, src source) string {
	t.Helper()
	p := start(t, &proxy.Bootstrap{
		Admin:    "127.0.0.1:0",
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/books", Port: 80, Listen: "127.0.0.1:0"}}},
		Config:   proxytest.Compile(t, m.in, spec.Node{ID: sa, Identity: id(t, m.td, sa)}),
	}, src)
	return p.FixedAddr("shop/books", 80).String()
}

func start(t *testing.T, b *proxy.Bootstrap, src source) *proxy.Proxy {
	t.Helper()
	if err := b.Validate(); err != nil {
		t.Fatal(err)
	}
	opts := proxy.Options{Logger: quiet}
	if src != nil { // nil: a sidecar without an identity, speaking plaintext
		opts.SVIDs, opts.Bundles = src, src
	}
	p := proxy.New(b, opts)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// pickedSource opens a Workload API X509Source that serves the SVID with the
// given ID out of all those the caller is entitled to (a SPIRE agent hands
// every matching entry's SVID to a process).
func pickedSource(t *testing.T, ctx context.Context, addr string, want spiffeid.ID) *workloadapi.X509Source {
	t.Helper()
	src, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(workloadapi.WithAddr(addr)),
		workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			for _, s := range svids {
				if s.ID == want {
					return s
				}
			}
			return svids[0] // the source then presents another ID; the test sees it
		}))
	if err != nil {
		t.Fatalf("X509Source for %s at %s: %v", want, addr, err)
	}
	t.Cleanup(func() { src.Close() })
	if s, err := src.GetX509SVID(); err != nil || s.ID != want {
		t.Fatalf("source for %s serves %v (%v)", want, s, err)
	}
	return src
}

// get sends one request through a client sidecar and returns the status,
// the body and, for a 200, the X-Forwarded-Client-Cert the app received.
func get(t *testing.T, c *http.Client, addr, method, path string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, string(body), ""
	}
	var r demoapp.Response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("app answer %q: %v", body, err)
	}
	return resp.StatusCode, string(body), strings.Join(r.Headers.Values("X-Forwarded-Client-Cert"), ",")
}

// getNoFatal is get for goroutines other than the test's: it reports a
// transport error as status 0 instead of failing the test.
func getNoFatal(c *http.Client, addr, path string) (int, string, error) {
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error(), err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func httpClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second} // a failure is an error or a hang, not a slow answer on a loaded machine
}
