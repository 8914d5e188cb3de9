package control_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// BenchmarkFanout measures one snapshot change reaching every connected
// proxy: publish, per-stream compile, send, apply and ACK, with 200 proxies
// over real loopback gRPC. Every proxy's config changes (a new endpoint of
// a service all of them may call).
func BenchmarkFanout(b *testing.B) {
	const proxies = 200
	srv, addr := Start(b, "", control.Options{})
	mesh := func(i int) *spec.Snapshot {
		in := Mesh(Web)
		in.Services[2].Endpoints = append(in.Services[2].Endpoints, Endpoint(fmt.Sprintf("127.0.0.2:%d", 20000+i%40000)))
		return Snapshot(b, in)
	}
	srv.Publish(mesh(0), nil)
	var applied atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, proxies)
	for i := range proxies {
		id, _ := spiffeid.FromSegments(spiffeid.RequireTrustDomainFromString(TrustDomain), "ns", "shop", "sa", fmt.Sprintf("w%d", i))
		c, err := configsource.New(configsource.Options{Addr: addr, Node: spec.Node{ID: fmt.Sprintf("n%d", i), Identity: id}, Logger: Quiet,
			Apply: func(*spec.NodeConfig) error { applied.Add(1); return nil }})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = c.Run(ctx); done <- struct{}{} }()
	}
	b.Cleanup(func() {
		cancel()
		for range proxies {
			<-done
		}
	})
	waitApplied := func(n int64) {
		for deadline := time.Now().Add(60 * time.Second); applied.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d configs applied", applied.Load(), n)
			}
		}
	}
	waitApplied(proxies)
	b.ResetTimer()
	for i := range b.N {
		srv.Publish(mesh(i+1), nil)
		waitApplied(int64(proxies * (i + 2)))
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/fanout")
}
