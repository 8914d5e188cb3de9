package proxy_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/causeway-mesh/causeway/internal/demoapp"
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

// benchH2CBackend answers a fixed small body over h2c prior knowledge (and
// HTTP/1.1): the upstream of the HTTP/2 benchmarks.
func benchH2CBackend(b *testing.B) string {
	addr, s := proxytest.HTTPServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello from the backend\n")
	}))
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s.Protocols = &protos
	return addr
}

// benchH2CGet sends GETs over one h2c connection (as h2load -c1 does with
// many streams): RunParallel's goroutines multiplex onto it.
func benchH2CGet(b *testing.B, url string) {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos, DisableCompression: true}
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
			if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
				b.Errorf("status %d proto %s", resp.StatusCode, resp.Proto)
				return
			}
		}
	})
}

// BenchmarkH2CDirect is the h2c baseline: client straight to the backend.
func BenchmarkH2CDirect(b *testing.B) {
	benchH2CGet(b, "http://"+benchH2CBackend(b)+"/")
}

// startBenchProxy starts a proxy with one fixed port for svc.
func startBenchProxy(b *testing.B, svc spec.Service, boot proxy.Bootstrap, node spec.Node) *proxy.Proxy {
	b.Helper()
	boot.Config = proxytest.Compile(b, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, node)
	p := proxy.New(&boot, proxy.Options{Logger: quiet})
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkH2COneHop sends h2c requests through one sidecar's fixed port
// for an http2 service port to an h2c backend.
func BenchmarkH2COneHop(b *testing.B) {
	addr := benchH2CBackend(b)
	svc := proxytest.Service("bench/web", 80, spec.ProtocolHTTP2, proxytest.AppEndpoint(b, addr, 80))
	p := startBenchProxy(b, svc, proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "bench/web", Port: 80, Listen: "127.0.0.1:0"}}},
	}, spec.Node{ID: "bench"})
	benchH2CGet(b, "http://"+p.FixedAddr("bench/web", 80).String()+"/")
}

// BenchmarkH2CTwoHops: h2c through a client sidecar and a server
// sidecar's inbound listener to the backend.
func BenchmarkH2CTwoHops(b *testing.B) {
	addr := benchH2CBackend(b)
	svc := proxytest.Service("bench/web", 80, spec.ProtocolHTTP2)
	svc.Ports[0].TargetPort = proxytest.Port(b, addr)
	server := startBenchProxy(b, svc, proxy.Bootstrap{Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"}},
		spec.Node{ID: "server", Services: []spec.Key{svc.Key}})
	svc.Endpoints = []spec.Endpoint{proxytest.SidecarEndpoint(b, server.InboundAddr())}
	client := startBenchProxy(b, svc, proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "bench/web", Port: 80, Listen: "127.0.0.1:0"}}},
	}, spec.Node{ID: "client"})
	benchH2CGet(b, "http://"+client.FixedAddr("bench/web", 80).String()+"/")
}

// BenchmarkGRPCOneHop sends unary gRPC calls (grpc-go client, one
// connection) through one sidecar to the demo app's gRPC server.
func BenchmarkGRPCOneHop(b *testing.B) {
	app := proxytest.App(b, demoapp.Options{Name: "rpc", Listen: "on"})
	svc := proxytest.Service("shop/rpc", 9090, spec.ProtocolGRPC, proxytest.AppEndpoint(b, app.HTTPAddr, 9090))
	p := startBenchProxy(b, svc, proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/rpc", Port: 9090, Listen: "127.0.0.1:0"}}},
	}, spec.Node{ID: "client"})
	cc, err := grpc.NewClient("passthrough:///"+p.FixedAddr("shop/rpc", 9090).String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	ec := demoapp.NewEchoClient(cc)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ec.Echo(ctx, "x"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
