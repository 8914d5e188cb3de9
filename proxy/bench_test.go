package proxy_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// benchBackend answers a fixed small body; what is measured is the hop.
func benchBackend(b *testing.B) string {
	addr, _ := proxytest.HTTPServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the backend\n")
	}))
	return addr
}

func benchGet(b *testing.B, url string) {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkDirect is the baseline: client straight to the backend. Its
// allocs/op are the client's and backend's share of BenchmarkOneHop's.
func BenchmarkDirect(b *testing.B) {
	benchGet(b, "http://"+benchBackend(b)+"/")
}

// BenchmarkOneHop sends HTTP/1.1 keep-alive requests through one sidecar
// (fixed port, L7: route, split, balancer, breaker, metrics).
func BenchmarkOneHop(b *testing.B) {
	addr := benchBackend(b)
	in := spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{
		proxytest.Service("bench/web", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(b, addr, 80)),
	}}
	p := proxy.New(&proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "bench/web", Port: 80, Listen: "127.0.0.1:0"}}},
		Config:   proxytest.Compile(b, in, spec.Node{ID: "bench"}),
	}, proxy.Options{Logger: quiet})
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	benchGet(b, "http://"+p.FixedAddr("bench/web", 80).String()+"/")
}

// BenchmarkTwoHops sends HTTP/1.1 keep-alive requests through a client
// sidecar's fixed port and a server sidecar's inbound listener (the
// preamble hop) to the backend.
func BenchmarkTwoHops(b *testing.B) {
	addr := benchBackend(b)
	svc := proxytest.Service("bench/web", 80, spec.ProtocolHTTP)
	svc.Ports[0].TargetPort = proxytest.Port(b, addr)
	server := proxy.New(&proxy.Bootstrap{
		Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Config:  proxytest.Compile(b, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, spec.Node{ID: "server", Services: []spec.Key{svc.Key}}),
	}, proxy.Options{Logger: quiet})
	if err := server.Start(); err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	svc.Endpoints = []spec.Endpoint{proxytest.SidecarEndpoint(b, server.InboundAddr())}
	client := proxy.New(&proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "bench/web", Port: 80, Listen: "127.0.0.1:0"}}},
		Config:   proxytest.Compile(b, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, spec.Node{ID: "client"}),
	}, proxy.Options{Logger: quiet})
	if err := client.Start(); err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	benchGet(b, "http://"+client.FixedAddr("bench/web", 80).String()+"/")
}
