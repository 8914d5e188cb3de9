package proxy_test

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// authMesh: shop/books (identity books) behind a server sidecar with mTLS,
// strict mode, and one TrafficTarget letting shop/web GET /books*. Port 80
// is HTTP, port 7000 TCP (no TCPRoute rule: nobody may use it). Client
// sidecars are started per caller identity.
type authMesh struct {
	ca       *proxytest.CA
	in       spec.Input
	server   *proxy.Proxy
	tcpConns *atomic.Int64 // connections the TCP app accepted
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

func newAuthMesh(t *testing.T) *authMesh {
	t.Helper()
	ca := proxytest.NewCA(t, "cluster.local")
	app := proxytest.App(t, demoapp.Options{Name: "books", Listen: "on"})
	var tcpConns atomic.Int64
	tcpApp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tcpApp.Close() })
	go func() {
		for {
			c, err := tcpApp.Accept()
			if err != nil {
				return
			}
			tcpConns.Add(1)
			c.Close()
		}
	}()
	in := smiInput(t, booksSMI)
	in.TrustDomain = "cluster.local"
	in.Mode = spec.ModeStrict
	booksID := ca.ID("shop", "books")
	books := spec.Service{Key: proxytest.K("shop/books"), Identities: nil, Ports: []spec.Port{
		{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP, TargetPort: proxytest.Port(t, app.HTTPAddr)},
		{Name: "tcp", Port: 7000, Protocol: spec.ProtocolTCP, TargetPort: proxytest.Port(t, tcpApp.Addr())},
	}}
	in.Services = append(in.Services, books)
	m := &authMesh{ca: ca, tcpConns: &tcpConns}
	m.server = startProxy2(t, &proxy.Bootstrap{
		Admin:   "127.0.0.1:0",
		Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Config:  proxytest.Compile(t, in, spec.Node{ID: "books", Identity: booksID, Services: []spec.Key{books.Key}}),
	}, proxy.Options{SVIDs: ca.SVID(t, booksID, time.Time{}, time.Time{}), Bundles: ca.Bundle()})
	ep := proxytest.SidecarEndpoint(t, m.server.InboundAddr())
	ep.Identity = booksID
	in.Services[len(in.Services)-1].Endpoints = []spec.Endpoint{ep}
	m.in = in
	return m
}

// caller starts a client sidecar holding an SVID for shop/<sa> and returns
// the addresses of its fixed ports for books:80 and books:7000.
func (m *authMesh) caller(t *testing.T, sa string) (httpAddr, tcpAddr string) {
	t.Helper()
	id := m.ca.ID("shop", sa)
	p := startProxy2(t, &proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{
			{Service: "shop/books", Port: 80, Listen: "127.0.0.1:0"}, {Service: "shop/books", Port: 7000, Listen: "127.0.0.1:0"}}},
		Config: proxytest.Compile(t, m.in, spec.Node{ID: sa, Identity: id}),
	}, proxy.Options{SVIDs: m.ca.SVID(t, id, time.Time{}, time.Time{}), Bundles: m.ca.Bundle()})
	return p.FixedAddr("shop/books", 80).String(), p.FixedAddr("shop/books", 7000).String()
}

// TestAuthorization: the verified caller identity meets TrafficTargets at
// the destination: allowed route 200 (and the app sees Envoy-style XFCC,
// never the caller's own), denied path or method 403 with a reason, an
// identity no policy names 403, a TCP flow with no TCPRoute rule closed
// before the app sees a connection.
func TestAuthorization(t *testing.T) {
	m := newAuthMesh(t)
	web, webTCP := m.caller(t, "web")
	other, _ := m.caller(t, "other")
	c := client(t)
	cases := []struct {
		name, addr, method, path string
		want                     int
	}{
		{"allowed route", web, "GET", "/books/1", 200},
		{"denied path", web, "GET", "/admin", 403},
		{"denied method", web, "DELETE", "/books/1", 403},
		{"identity no policy names", other, "GET", "/books/1", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := mustReq(t, tc.method, "http://"+tc.addr+tc.path, map[string]string{"X-Forwarded-Client-Cert": "By=forged;URI=spiffe://cluster.local/ns/shop/sa/admin"})
			code, _, body := do(t, c, req)
			if code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			if code == 403 && !strings.Contains(body, "forbidden") {
				t.Fatalf("403 without a reason: %q", body)
			}
			if code != 200 {
				return
			}
			var r demoapp.Response
			if err := json.Unmarshal([]byte(body), &r); err != nil {
				t.Fatal(err)
			}
			xfcc := r.Headers.Values("X-Forwarded-Client-Cert")
			if len(xfcc) != 1 || !strings.HasPrefix(xfcc[0], "By=spiffe://cluster.local/ns/shop/sa/books;Hash=") ||
				!strings.HasSuffix(xfcc[0], ";URI=spiffe://cluster.local/ns/shop/sa/web") {
				t.Fatalf("app saw X-Forwarded-Client-Cert %q", xfcc)
			}
		})
	}
	t.Run("decisions counted by caller identity", func(t *testing.T) {
		mfs := proxytest.Scrape(t, "http://"+m.server.AdminAddr().String()+"/metrics")
		counts := []struct {
			caller, decision string
			want             float64
		}{
			{"spiffe://cluster.local/ns/shop/sa/web", "allow", 1},
			{"spiffe://cluster.local/ns/shop/sa/web", "deny", 2},
			{"spiffe://cluster.local/ns/shop/sa/other", "deny", 1},
		}
		for _, c := range counts {
			got := proxytest.Sum(mfs, "causeway_inbound_authorization_total", map[string]string{"caller": c.caller, "decision": c.decision})
			if got != c.want {
				t.Errorf("authorization %s %s = %v, want %v", c.caller, c.decision, got, c.want)
			}
		}
	})
	t.Run("tcp without a TCPRoute rule is closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", webTCP)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "hello")
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		if n, err := conn.Read(make([]byte, 16)); err == nil {
			t.Fatalf("read %d bytes from a denied flow", n)
		}
		if got := m.tcpConns.Load(); got != 0 {
			t.Fatalf("the app accepted %d connections of a denied flow", got)
		}
	})
}

// TestInboundRefuses: callers that cannot prove an identity our bundle
// vouches for are refused at the handshake; a valid one gets through (the
// control that shows the raw client is right).
func TestInboundRefuses(t *testing.T) {
	m := newAuthMesh(t)
	otherCA := proxytest.NewCA(t, "cluster.local")
	otherTD := proxytest.NewCA(t, "other.example")
	web := m.ca.ID("shop", "web")
	cases := []struct {
		name string
		svid *x509svid.SVID // nil: plaintext
		ok   bool
	}{
		{"valid SVID", m.ca.SVID(t, web, time.Time{}, time.Time{}), true},
		{"plaintext", nil, false},
		{"another CA", otherCA.SVID(t, web, time.Time{}, time.Time{}), false},
		{"expired", m.ca.SVID(t, web, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)), false},
		{"other trust domain", otherTD.SVID(t, otherTD.ID("shop", "web"), time.Time{}, time.Time{}), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Dial("tcp", m.server.InboundAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(5 * time.Second))
			var conn net.Conn = raw
			if tc.svid != nil {
				// The client side trusts the server's CA, so any failure is
				// the server refusing the client.
				tc := tls.Client(raw, tlsconfig.MTLSClientConfig(tc.svid, m.ca.Bundle(), tlsconfig.AuthorizeAny()))
				conn = tc
			}
			var pre [8]byte
			copy(pre[:], "CWY\x01")
			binary.BigEndian.PutUint16(pre[4:], 80)
			_, werr := conn.Write(pre[:])
			if werr == nil {
				_, werr = fmt.Fprintf(conn, "GET /books HTTP/1.1\r\nHost: books.shop\r\n\r\n")
			}
			var resp *http.Response
			if werr == nil {
				resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
			} else {
				err = werr
			}
			if tc.ok {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("valid caller: %v %v", resp, err)
				}
				resp.Body.Close()
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("refused caller got an HTTP answer: %s", resp.Status)
			}
		})
	}
}

// TestSVIDRenewal: a renewed SVID is used for new connections while
// established ones keep working with the old one.
func TestSVIDRenewal(t *testing.T) {
	m := newAuthMesh(t)
	web := m.ca.ID("shop", "web")
	first := m.ca.SVID(t, web, time.Time{}, time.Time{})
	src := proxytest.NewRotatingSource(first)
	p := startProxy2(t, &proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/books", Port: 80, Listen: "127.0.0.1:0"}}},
		Config:   proxytest.Compile(t, m.in, spec.Node{ID: "web", Identity: web}),
	}, proxy.Options{SVIDs: src, Bundles: m.ca.Bundle()})
	base := "http://" + p.FixedAddr("shop/books", 80).String()
	c := client(t)
	// hashOf returns the Hash= of the XFCC the app saw; safe to call from
	// any goroutine (errors come back, they do not stop the test).
	hashOf := func(query string) (string, error) {
		resp, err := c.Get(base + "/books" + query)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var r demoapp.Response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
			return "", fmt.Errorf("GET: %s, %v", resp.Status, err)
		}
		_, h, _ := strings.Cut(r.Headers.Get("X-Forwarded-Client-Cert"), ";Hash=")
		h, _, _ = strings.Cut(h, ";")
		return h, nil
	}
	must := func(h string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	old := must(hashOf(""))
	second := m.ca.SVID(t, web, time.Time{}, time.Time{})
	src.Set(second)
	if h := must(hashOf("")); h != old {
		t.Fatalf("the established connection changed certificate")
	}
	// Concurrent slow requests make the sidecar open new connections, which
	// must present the renewed SVID.
	type result struct {
		h   string
		err error
	}
	hashes := make(chan result, 4)
	for range 4 {
		go func() {
			h, err := hashOf("?latency=200ms")
			hashes <- result{h, err}
		}()
	}
	renewed := false
	for range 4 {
		if r := <-hashes; must(r.h, r.err) != old {
			renewed = true
		}
	}
	if !renewed {
		t.Fatalf("no new connection used the renewed SVID")
	}
}
