package proxy_test

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestTransparentWithoutRedirect covers transparent mode on loopback, with
// no iptables (the redirected paths are in internal/redirect's
// TestNetnsTransparent, which needs root): what each listener does with a
// connection that was not redirected, and with an unmeshed client by mode.
// Every case must end in a closed connection and the counter it names.
func TestTransparentWithoutRedirect(t *testing.T) {
	cases := []struct {
		name      string
		mode      spec.Mode
		inboundTr bool
		outbound  bool   // dial the transparent listener instead of inbound
		send      string // the client's first bytes
		direction string
		// results the one counted connection may have: a connection that
		// was not redirected is "refused" when conntrack reports the
		// listener as its original destination, "error" when conntrack
		// has no entry for it (no nat table in this namespace); both close.
		results []string
	}{
		{"outbound listener dialled directly is not looped", spec.ModePermissive, false, true, "GET / HTTP/1.1\r\n\r\n",
			"outbound", []string{"refused", "error"}},
		// Strict refuses before it looks for an original destination.
		{"strict: unmeshed client closed", spec.ModeStrict, true, false, "GET / HTTP/1.1\r\n\r\n",
			"inbound", []string{"refused"}},
		{"strict: a first byte like the preamble's is not the mesh", spec.ModeStrict, true, false, "CONNECT x:1 HTTP/1.1\r\n\r\n",
			"inbound", []string{"refused"}},
		{"permissive: not redirected, so no app port to forward to", spec.ModePermissive, true, false, "GET / HTTP/1.1\r\n\r\n",
			"inbound", []string{"refused", "error"}},
		{"transparent off: closed, not counted", spec.ModePermissive, false, false, "GET / HTTP/1.1\r\n\r\n", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &proxy.Bootstrap{
				Admin:    "127.0.0.1:0",
				Inbound:  proxy.InboundConfig{Listen: "127.0.0.1:0", Transparent: c.inboundTr},
				Outbound: proxy.OutboundConfig{Transparent: "127.0.0.1:0"},
				Config:   &spec.NodeConfig{Version: "v1", Mode: c.mode},
			}
			p := startProxy(t, b)
			addr := p.InboundAddr().String()
			if c.outbound {
				addr = p.TransparentAddr().String()
			}
			conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, c.send); err != nil {
				t.Fatal(err)
			}
			if n, err := conn.Read(make([]byte, 1)); err == nil {
				t.Fatalf("read %d bytes, want the connection closed", n)
			}
			mfs := proxytest.Scrape(t, fmt.Sprintf("http://%s/metrics", p.AdminAddr()))
			all := proxytest.Sum(mfs, "causeway_transparent_connections_total", nil)
			var got float64
			for _, r := range c.results {
				got += proxytest.Sum(mfs, "causeway_transparent_connections_total", map[string]string{"direction": c.direction, "result": r})
			}
			if want := float64(min(len(c.results), 1)); got != want || all != want {
				t.Errorf("causeway_transparent_connections_total{direction=%q, result in %v} = %v (all: %v), want %v", c.direction, c.results, got, all, want)
			}
		})
	}
}
