package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/causeway-mesh/causeway/gateway"
	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestMain fails the package if a test leaves a goroutine behind: every
// gateway, proxy, app and Workload API a test starts must be gone.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eventually polls cond for up to 30 s: what it waits for takes
// milliseconds, but CI runs every package's tests at once on two cores.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestAcrossClusters: a west sidecar reaches east's exported shop/books
// through east's gateway, with mTLS end to end: HTTP/1.1 (fast path) gets
// 200 and the app's XFCC names the *west* caller, verified by east's
// destination sidecar; pooled connections are reused exactly as for a
// direct endpoint (many requests, one gateway connection); a west caller
// that east's TrafficTarget does not name gets 403 from the destination;
// gRPC over h2c and a TCP echo cross too; UDP is not carried.
func TestAcrossClusters(t *testing.T) {
	m := newMulti(t, 1)
	web := m.caller(t, m.west, m.westFed, "web")
	other := m.caller(t, m.west, m.westFed, "other")
	c := httpClient(t)

	t.Run("http via gateway names the west caller", func(t *testing.T) {
		before := m.forwarded(t)
		for i := range 20 {
			status, body := get(t, c, "http://"+web.FixedAddr(importK.String(), portHTTP).String()+"/books")
			if status != http.StatusOK {
				t.Fatalf("request %d: status %d: %s", i, status, body)
			}
			var r demoapp.Response
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			xfcc := r.Headers.Get("X-Forwarded-Client-Cert")
			if !strings.Contains(xfcc, ";URI=spiffe://west.test/ns/shop/sa/web") || !strings.HasPrefix(xfcc, "By=spiffe://east.test/ns/shop/sa/books;") {
				t.Fatalf("XFCC = %q, want By=east books, URI=west web", xfcc)
			}
		}
		if got := m.forwarded(t) - before; got != 1 {
			t.Fatalf("gateway forwarded %v connections for 20 keep-alive requests, want 1 (pooled)", got)
		}
	})
	t.Run("destination denies a west caller its TrafficTarget does not name", func(t *testing.T) {
		status, body := get(t, c, "http://"+other.FixedAddr(importK.String(), portHTTP).String()+"/books")
		if status != http.StatusForbidden || !strings.Contains(string(body), "forbidden") {
			t.Fatalf("status %d (%s), want 403 from the destination", status, body)
		}
	})
	t.Run("grpc over h2c", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///"+web.FixedAddr(importK.String(), portGRPC).String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ec := demoapp.NewEchoClient(cc)
		for i := range 5 {
			r, err := ec.Echo(ctx, "hello")
			if err != nil {
				t.Fatalf("Echo %d: %v", i, err)
			}
			if r.Message != "hello" || !strings.Contains(r.Metadata["x-forwarded-client-cert"], "URI=spiffe://west.test/ns/shop/sa/web") {
				t.Fatalf("Echo = %+v, want the message back and XFCC naming west web", r)
			}
		}
	})
	t.Run("http/1.1 chunked upload takes the net/http path", func(t *testing.T) {
		body := strings.Repeat("x", 100000)
		// An io.Reader of unknown length makes net/http send it chunked,
		// which the fast path hands to the net/http server.
		resp, err := c.Post("http://"+web.FixedAddr(importK.String(), portHTTP).String()+"/upload", "text/plain",
			io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r demoapp.Response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || r.BodyBytes != int64(len(body)) || r.Headers.Get("Content-Length") != "" {
			t.Fatalf("status %d, app read %d bytes (headers %v); want 200 and %d bytes, chunked", resp.StatusCode, r.BodyBytes, r.Headers, len(body))
		}
	})
	t.Run("grpc bidirectional stream", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///"+web.FixedAddr(importK.String(), portGRPC).String(),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := demoapp.NewEchoClient(cc).EchoStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range []string{"one", "two", "three"} {
			if err := st.Send(msg); err != nil {
				t.Fatalf("send %q: %v", msg, err)
			}
			r, err := st.Recv()
			if err != nil || r.Message != msg {
				t.Fatalf("recv = %+v, %v; want %q", r, err, msg)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("caller without an SVID is told why", func(t *testing.T) {
		p := startProxy(t, &proxy.Bootstrap{
			Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: importK.String(), Port: portHTTP, Listen: "127.0.0.1:0"}}},
			Config:   proxytest.Compile(t, m.westInput(t), spec.Node{ID: "west-plain"}),
		}, proxy.Options{})
		before := m.forwarded(t)
		status, body := get(t, c, "http://"+p.FixedAddr(importK.String(), portHTTP).String()+"/books")
		if status != http.StatusBadGateway || !strings.Contains(string(body), "mTLS is off") {
			t.Fatalf("status %d (%s), want 502 saying mTLS is off", status, body)
		}
		if got := m.forwarded(t); got != before {
			t.Fatalf("gateway forwarded %v connections for a caller without an SVID", got-before)
		}
	})
	t.Run("tcp echo", func(t *testing.T) {
		conn, err := net.Dial("tcp", web.FixedAddr(importK.String(), portTCP).String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		msg := bytes.Repeat([]byte("east-west "), 10000) // 100 kB: several TLS records each way
		go func() {
			_, _ = conn.Write(msg)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(conn)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %d bytes, err %v; want the %d bytes sent", len(got), err, len(msg))
		}
	})
	t.Run("udp is not carried across clusters", func(t *testing.T) {
		conn, err := net.Dial("udp", web.FixedAddr(importK.String(), portUDP).String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var b [16]byte
		if n, err := conn.Read(b[:]); err == nil {
			t.Fatalf("UDP answered %q through a gateway endpoint; want no session (no DTLS)", b[:n])
		}
	})
}

// tlsTo dials the gateway as the holder of src, asking for sni, and
// returns once the connection is closed by the gateway (or fails).
func tlsTo(t *testing.T, m *multi, src *workloadapi.X509Source, sni string) {
	t.Helper()
	cfg := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(m.gwID))
	cfg.ServerName = sni
	d := &net.Dialer{Timeout: 5 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", m.gw.Addr().String(), cfg)
	if err != nil {
		return // refused in the handshake
	}
	defer conn.Close()
	// TLS 1.3: the server judges the client certificate after the client's
	// handshake is done, so a refusal shows on the first read.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := conn.Read(b[:]); err == nil {
		t.Fatal("gateway sent data on a connection it should refuse")
	} else if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("gateway kept a connection it should refuse open")
	}
}

// TestRefusals: everything but an exported service port of the gateway's
// own trust domain, asked for by a caller from a linked trust domain, is
// closed and counted by reason.
func TestRefusals(t *testing.T) {
	m := newMulti(t, 1)
	webSrc := source(t, m.west, "shop", "web", m.westFed)
	// far.test trusts east (it can verify the gateway) but east has no
	// bundle for far.test: not linked.
	farSrc := source(t, m.far, "shop", "web", m.westFed)
	cases := []struct {
		name   string
		reason string
		do     func(t *testing.T)
	}{
		{"plaintext", gateway.ReasonNotTLS, func(t *testing.T) {
			conn, err := net.Dial("tcp", m.gw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: books\r\n\r\n")
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, _ := io.ReadAll(conn); bytes.Contains(b, []byte("HTTP/1.1 200")) {
				t.Fatalf("plaintext got an answer: %q", b)
			}
		}},
		{"caller from an unlinked trust domain", gateway.ReasonUntrusted, func(t *testing.T) {
			tlsTo(t, m, farSrc, "80.books.shop.svc.east.test")
		}},
		{"non-exported service", gateway.ReasonNotExported, func(t *testing.T) {
			tlsTo(t, m, webSrc, "80.secret.shop.svc.east.test")
		}},
		{"unknown service", gateway.ReasonUnknownSvc, func(t *testing.T) {
			tlsTo(t, m, webSrc, "80.nope.shop.svc.east.test")
		}},
		{"unknown port", gateway.ReasonUnknownPort, func(t *testing.T) {
			tlsTo(t, m, webSrc, "81.books.shop.svc.east.test")
		}},
		{"udp port", gateway.ReasonUDP, func(t *testing.T) {
			tlsTo(t, m, webSrc, "5353.books.shop.svc.east.test")
		}},
		{"SNI for another trust domain", gateway.ReasonForeignTD, func(t *testing.T) {
			tlsTo(t, m, webSrc, "80.books.shop.svc.west.test")
		}},
		{"SNI that is not a mesh name", gateway.ReasonBadSNI, func(t *testing.T) {
			tlsTo(t, m, webSrc, "books.example.com")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := m.refused(t, tc.reason)
			fwd := m.forwarded(t)
			tc.do(t)
			eventually(t, "refused_total{reason="+tc.reason+"} to grow by 1", func() bool {
				return m.refused(t, tc.reason)-before == 1
			})
			if got := m.forwarded(t); got != fwd {
				t.Fatalf("forwarded grew from %v to %v on a refused connection", fwd, got)
			}
		})
	}
}

// TestNoEndpoint: an exported port whose endpoints are all gone (or not
// ready) is refused as no_endpoint; a dead endpoint as dial_failed.
func TestNoEndpoint(t *testing.T) {
	m := newMulti(t, 1)
	webSrc := source(t, m.west, "shop", "web", m.westFed)
	// Nothing listens on dead: connection refused. It is chosen below the
	// ephemeral range, so no other package's ":0" listener can land on it
	// (and answer) before the last case dials it.
	free, err := loopback.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	dead := free[0]
	cases := []struct {
		name   string
		eps    []spec.Endpoint
		reason string
	}{
		{"not ready", []spec.Endpoint{{Addr: "127.0.0.1", Port: 1, Ready: false, Identity: m.gwID}}, gateway.ReasonNoEndpoint},
		{"app endpoint, not a sidecar", []spec.Endpoint{{Addr: "127.0.0.1", Port: 1, ServicePort: portHTTP, Ready: true}}, gateway.ReasonNoEndpoint},
		{"dead sidecar", []spec.Endpoint{{Addr: "127.0.0.1", Port: int32(dead), Ready: true, Identity: m.gwID}}, gateway.ReasonDialFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := m.eastIn
			in.Services = append([]spec.Service(nil), in.Services...)
			in.Services[0].Endpoints = tc.eps
			if err := m.gw.Apply(m.gatewayConfig(t, in)); err != nil {
				t.Fatal(err)
			}
			before := m.refused(t, tc.reason)
			tlsTo(t, m, webSrc, "80.books.shop.svc.east.test")
			eventually(t, "refused_total{reason="+tc.reason+"} to grow by 1", func() bool {
				return m.refused(t, tc.reason)-before == 1
			})
		})
	}
}
