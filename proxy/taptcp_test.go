package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy"
)

// tapOf subscribes to a proxy's /tap and returns its events as they come.
func tapOf(t *testing.T, p *proxy.Proxy) <-chan proxy.TapEvent {
	t.Helper()
	resp, err := http.Get("http://" + p.AdminAddr().String() + "/tap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	ch := make(chan proxy.TapEvent, 16)
	go func() {
		defer close(ch)
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			var ev proxy.TapEvent
			if json.Unmarshal(line, &ev) == nil {
				ch <- ev
			}
		}
	}()
	return ch
}

// nextFlow returns the next TCP flow event of ch.
func nextFlow(t *testing.T, ch <-chan proxy.TapEvent, what string) proxy.TapEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("%s: tap stream ended", what)
			}
			if ev.Protocol == "tcp" {
				return ev
			}
		case <-timeout:
			t.Fatalf("%s: no TCP flow on /tap", what)
		}
	}
}

// TestTapTCPFlows: an opaque TCP flow shows on both sidecars' /tap when it
// ends, with the bytes that crossed each way, its backend and endpoint; a
// flow the destination refuses shows there as denied, with the verified
// caller.
func TestTapTCPFlows(t *testing.T) {
	t.Run("flow through two sidecars", func(t *testing.T) {
		h := newTwoHop(t)
		client, server := tapOf(t, h.client), tapOf(t, h.server)
		tcpRoundTrip(t, func() net.Conn {
			c, err := net.Dial("tcp", h.fixed[7000])
			if err != nil {
				t.Fatal(err)
			}
			return c
		})
		const want = 5 + 1<<20
		out, in := nextFlow(t, client, "client sidecar"), nextFlow(t, server, "server sidecar")
		cases := []struct {
			name                 string
			ev                   proxy.TapEvent
			direction, backend   string
			endpointSet, success bool
		}{
			{"client side", out, "outbound", "shop/api", true, true},
			{"server side", in, "inbound", "app", true, true},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				ev := tc.ev
				if ev.Direction != tc.direction || ev.Service != "shop/api" || ev.Backend != tc.backend || ev.Endpoint == "" {
					t.Errorf("event %+v: want %s shop/api backend %s with an endpoint", ev, tc.direction, tc.backend)
				}
				if ev.BytesIn != want || ev.BytesOut != want {
					t.Errorf("bytes in %d out %d, want %d each way", ev.BytesIn, ev.BytesOut, want)
				}
				if ev.Classification != "success" || ev.LatencyMs <= 0 {
					t.Errorf("classification %q duration %vms", ev.Classification, ev.LatencyMs)
				}
			})
		}
	})
	t.Run("denied flow", func(t *testing.T) {
		m := newAuthMesh(t)
		_, webTCP := m.caller(t, "web")
		server := tapOf(t, m.server)
		conn, err := net.Dial("tcp", webTCP)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "hello")
		ev := nextFlow(t, server, "destination")
		if ev.Classification != "denied" || ev.Caller != m.ca.ID("shop", "web").String() || ev.BytesIn != 0 {
			t.Errorf("event %+v: want denied, caller shop/web, no bytes", ev)
		}
	})
}
