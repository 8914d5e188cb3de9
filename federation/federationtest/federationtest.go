// Package federationtest starts in-process federation sides for tests of
// the packages that use federation (the REST API, the CLI): each side has
// its own trust domain, CA, bundle set and Links serving on a loopback
// port, with fast heartbeats. It is imported only from _test.go files.
package federationtest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/identitytest"
)

// Side is one cluster's federation.
type Side struct {
	Cluster string
	TD      spiffeid.TrustDomain
	CA      *ca.CA
	Set     *bundle.Set
	Links   *federation.Links
	Addr    string // federation listener
}

// New starts cluster's side, trust domain <cluster>.causeway.local; it is
// closed when the test ends. gateways are its east-west gateway addresses.
func New(t testing.TB, cluster string, gateways ...string) *Side {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(cluster + ".causeway.local")
	c := identitytest.NewCA(t, td, nil)
	svid, err := c.NewSVIDSource(spiffeid.RequireFromPath(td, "/ns/causeway/sa/control"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Side{Cluster: cluster, TD: td, CA: c, Set: bundle.NewSet(), Addr: lis.Addr().String()}
	s.Links, err = federation.New(federation.Options{Cluster: cluster, TrustDomain: td, SVID: svid, Bundle: c, Federated: s.Set,
		Advertise: []string{s.Addr}, GatewayAddrs: gateways,
		GatewayID: spiffeid.RequireFromPath(td, "/ns/causeway-system/sa/causeway-gateway"),
		Heartbeat: 100 * time.Millisecond, ProbeInterval: 100 * time.Millisecond,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: identitytest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.Links.Serve(lis); err != nil {
			t.Errorf("federationtest: %s: Serve: %v", cluster, err)
		}
	})
	wg.Go(func() { _ = s.Links.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		s.Links.Close()
		wg.Wait()
	})
	return s
}
