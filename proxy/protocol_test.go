package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// twoHop is a client sidecar and a server sidecar in front of one demo app
// serving shop/api on four ports: http 80, grpc 9090, tcp 7000, udp 7001.
// The client reaches them on fixed ports, the sidecars talk over the mesh
// (preamble to the server's inbound listener).
type twoHop struct {
	app            *demoapp.Server
	client, server *proxy.Proxy
	fixed          map[int32]string // service port -> client fixed address
	fwd            string           // client's HTTP forward proxy
}

func newTwoHop(t *testing.T) *twoHop {
	t.Helper()
	app := proxytest.App(t, demoapp.Options{Name: "api", Listen: "on", TCPEcho: "on", UDPEcho: "on"})
	svc := spec.Service{Key: proxytest.K("shop/api"), Ports: []spec.Port{
		{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP, TargetPort: proxytest.Port(t, app.HTTPAddr)},
		{Name: "grpc", Port: 9090, Protocol: spec.ProtocolGRPC, TargetPort: proxytest.Port(t, app.HTTPAddr)},
		{Name: "tcp", Port: 7000, Protocol: spec.ProtocolTCP, TargetPort: proxytest.Port(t, app.TCPAddr)},
		{Name: "udp", Port: 7001, Protocol: spec.ProtocolUDP, TargetPort: proxytest.Port(t, app.UDPAddr)},
	}}
	in := spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}
	h := &twoHop{app: app, fixed: map[int32]string{}}
	// The server sidecar needs only its own service's ports; its inbound
	// address (picked by the kernel) then becomes the endpoint the client
	// sidecar is given.
	h.server = startProxy(t, &proxy.Bootstrap{
		Admin:   "127.0.0.1:0",
		Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Config:  proxytest.Compile(t, in, spec.Node{ID: "server", Services: []spec.Key{svc.Key}}),
	})
	in.Services[0].Endpoints = []spec.Endpoint{proxytest.SidecarEndpoint(t, h.server.InboundAddr())}
	b := &proxy.Bootstrap{Admin: "127.0.0.1:0", Outbound: proxy.OutboundConfig{HTTPProxy: "127.0.0.1:0"}, Config: proxytest.Compile(t, in, spec.Node{ID: "client"})}
	for _, p := range svc.Ports {
		b.Outbound.Ports = append(b.Outbound.Ports, proxy.FixedPort{Service: "shop/api", Port: p.Port, Listen: "127.0.0.1:0"})
	}
	h.client = startProxy(t, b)
	for _, p := range svc.Ports {
		h.fixed[p.Port] = h.client.FixedAddr("shop/api", p.Port).String()
	}
	h.fwd = h.client.HTTPProxyAddr().String()
	return h
}

// TestTwoHopProtocols sends every protocol through client sidecar -> server
// sidecar -> app and checks what arrives.
func TestTwoHopProtocols(t *testing.T) {
	h := newTwoHop(t)
	t.Run("http keep-alive", func(t *testing.T) {
		c := client(t)
		for i := range 20 {
			code, name, body := do(t, c, mustReq(t, "GET", "http://"+h.fixed[80]+fmt.Sprintf("/r/%d", i), nil))
			if code != 200 || name != "api" || !strings.Contains(body, fmt.Sprintf(`"path":"/r/%d"`, i)) {
				t.Fatalf("GET: %d %q %s", code, name, body)
			}
		}
	})
	t.Run("http2 prior knowledge to an http port", func(t *testing.T) {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("http://" + h.fixed[80] + "/h2")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("got %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
		}
	})
	t.Run("grpc unary, streaming and health", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///"+h.fixed[9090], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ec := demoapp.NewEchoClient(cc)
		r, err := ec.Echo(ctx, "hello")
		if err != nil || r.Message != "hello" || r.Name != "api" {
			t.Fatalf("Echo: %+v, %v", r, err)
		}
		st, err := ec.EchoStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			msg := fmt.Sprintf("m%d", i)
			if err := st.Send(msg); err != nil {
				t.Fatalf("Send %d: %v", i, err)
			}
			r, err := st.Recv()
			if err != nil || r.Message != msg {
				t.Fatalf("Recv %d: %+v, %v", i, r, err)
			}
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != io.EOF {
			t.Fatalf("stream end: %v, want EOF", err)
		}
		hr, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
		if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health: %v, %v", hr, err)
		}
	})
	t.Run("upgrade tunnels bytes", func(t *testing.T) {
		c, err := net.Dial("tcp", h.fixed[80])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: api.shop\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %v %v", resp, err)
		}
		for _, msg := range []string{"ping", "pong-pong"} {
			io.WriteString(c, msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
				t.Fatalf("echo over upgraded conn: %q %v", got, err)
			}
		}
	})
	t.Run("tcp echo and 1 MB intact", func(t *testing.T) {
		tcpRoundTrip(t, func() net.Conn {
			c, err := net.Dial("tcp", h.fixed[7000])
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	})
	t.Run("udp echo", func(t *testing.T) {
		c, err := net.Dial("udp", h.fixed[7001])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 5 {
			msg := fmt.Sprintf("datagram %d", i)
			var got []byte
			// UDP may drop; retry a few times before calling it lost.
			for try := 0; try < 5 && got == nil; try++ {
				c.Write([]byte(msg))
				c.SetReadDeadline(time.Now().Add(time.Second))
				buf := make([]byte, 1500)
				if n, err := c.Read(buf); err == nil {
					got = buf[:n]
				}
			}
			if string(got) != msg {
				t.Fatalf("udp echo: got %q want %q", got, msg)
			}
		}
	})
	t.Run("forward proxy by host", func(t *testing.T) {
		fwd, _ := url.Parse("http://" + h.fwd)
		tr := &http.Transport{Proxy: http.ProxyURL(fwd)}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		for _, host := range []string{"api.shop", "api.shop.svc", "api.shop.svc.cluster.local:80"} {
			code, name, body := do(t, c, mustReq(t, "GET", "http://"+host+"/fwd", nil))
			if code != 200 || name != "api" {
				t.Fatalf("GET via forward proxy to %s: %d %q %s", host, code, name, body)
			}
		}
		code, _, _ := do(t, c, mustReq(t, "GET", "http://nope.shop/", nil))
		if code != http.StatusBadGateway {
			t.Fatalf("unknown host: %d, want 502", code)
		}
	})
	t.Run("forward proxy CONNECT to a tcp port", func(t *testing.T) {
		tcpRoundTrip(t, func() net.Conn {
			c, err := net.Dial("tcp", h.fwd)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(c, "CONNECT api.shop:7000 HTTP/1.1\r\nHost: api.shop:7000\r\n\r\n")
			// Read the status line and blank line byte by byte so no tunnel
			// byte is consumed by a buffer.
			var head []byte
			b := make([]byte, 1)
			for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
				if _, err := c.Read(b); err != nil {
					t.Fatalf("CONNECT response: %v (%q)", err, head)
				}
				head = append(head, b[0])
			}
			if !bytes.HasPrefix(head, []byte("HTTP/1.1 200")) {
				t.Fatalf("CONNECT: %q", head)
			}
			return c
		})
	})
}

// TestTCPMetrics: L4 byte and connection counters equal what crossed.
func TestTCPMetrics(t *testing.T) {
	h := newTwoHop(t)
	const flows = 3
	for range flows {
		tcpRoundTrip(t, func() net.Conn {
			c, err := net.Dial("tcp", h.fixed[7000])
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
	}
	want := float64(flows * (5 + 1<<20))
	lbl := map[string]string{"direction": "outbound", "service": "shop/api"}
	// The proxy counts a flow when both directions have ended, a moment
	// after the client saw its last byte: poll for it, with room for a
	// CI machine that runs every package's tests at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mfs := proxytest.Scrape(t, "http://"+h.client.AdminAddr().String()+"/metrics")
		closed := proxytest.Sum(mfs, "causeway_tcp_connections_closed_total", lbl)
		if closed == flows || time.Now().After(deadline) {
			read := proxytest.Sum(mfs, "causeway_tcp_bytes_total", map[string]string{"direction": "outbound", "flow": "read"})
			written := proxytest.Sum(mfs, "causeway_tcp_bytes_total", map[string]string{"direction": "outbound", "flow": "write"})
			opened := proxytest.Sum(mfs, "causeway_tcp_connections_opened_total", lbl)
			if opened != flows || closed != flows || read != want || written != want {
				t.Fatalf("opened %v closed %v read %v written %v; want %d, %d, %v, %v", opened, closed, read, written, flows, flows, want, want)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tcpRoundTrip sends a short message and then 1 MB of random bytes through
// an echo and checks both come back whole.
func tcpRoundTrip(t *testing.T, dial func() net.Conn) {
	t.Helper()
	c := dial()
	defer c.Close()
	io.WriteString(c, "hello")
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "hello" {
		t.Fatalf("echo: %q %v", got, err)
	}
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		errc <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, c)
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != int64(len(payload)) || !bytes.Equal(h.Sum(nil), sha256Sum(payload)) {
		t.Fatalf("1 MB transfer: got %d bytes, hash mismatch=%v", n, !bytes.Equal(h.Sum(nil), sha256Sum(payload)))
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
