package proxy_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestGRPCClassification: gRPC responses are classified by grpc-status,
// not by the HTTP status (always 200): UNAVAILABLE calls are failures in
// the metrics, OK calls successes, and the client sees the real status.
func TestGRPCClassification(t *testing.T) {
	app := proxytest.App(t, demoapp.Options{Name: "rpc", Listen: "on", FailEvery: 2})
	in := spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{
		proxytest.Service("shop/rpc", 9090, spec.ProtocolGRPC, proxytest.AppEndpoint(t, app.HTTPAddr, 9090)),
	}}
	p := startProxy(t, &proxy.Bootstrap{
		Admin:    "127.0.0.1:0",
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/rpc", Port: 9090, Listen: "127.0.0.1:0"}}},
		Config:   proxytest.Compile(t, in, spec.Node{ID: "client"}),
	})
	cc, err := grpc.NewClient("passthrough:///"+p.FixedAddr("shop/rpc", 9090).String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ec := demoapp.NewEchoClient(cc)
	const n = 10
	var ok, unavailable int
	for range n {
		_, err := ec.Echo(ctx, "x")
		switch status.Code(err) {
		case codes.OK:
			ok++
		case codes.Unavailable:
			unavailable++
		default:
			t.Fatalf("Echo: %v", err)
		}
	}
	if ok != n/2 || unavailable != n/2 {
		t.Fatalf("ok %d unavailable %d, want %d each (the app fails every 2nd call)", ok, unavailable, n/2)
	}
	mfs := proxytest.Scrape(t, "http://"+p.AdminAddr().String()+"/metrics")
	cases := []struct {
		grpc, class string
		want        float64
	}{
		{"0", "success", n / 2},
		{"14", "failure", n / 2},
	}
	for _, tc := range cases {
		got := proxytest.Sum(mfs, "causeway_responses_total", map[string]string{"service": "shop/rpc", "status_code": "200", "grpc_status": tc.grpc, "classification": tc.class})
		if got != tc.want {
			t.Errorf("responses grpc_status=%s %s = %v, want %v", tc.grpc, tc.class, got, tc.want)
		}
	}
}
