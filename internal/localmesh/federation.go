package localmesh

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/causeway-mesh/causeway/federation"
)

// Links on loopback react within seconds: a gateway is probed every
// second, and a peer silent for 5 heartbeats is failed (its imports'
// endpoints not ready). Five rather than federation's default three, so a
// machine busy with a whole test suite does not fail a live link.
const (
	fedHeartbeat = time.Second
	fedTimeout   = 5 * fedHeartbeat
	fedProbe     = time.Second
)

// links adapts *federation.Links to federator: tokens travel as the one
// line `causeway link generate` prints, as between two real clusters.
type links struct{ *federation.Links }

func (l links) Generate(ttl time.Duration) (string, error) {
	t, err := l.Links.Generate(ttl)
	if err != nil {
		return "", err
	}
	return t.Encode(), nil
}

func (l links) Apply(ctx context.Context, token string) error {
	t, err := federation.ParseToken(token)
	if err != nil {
		return err
	}
	_, err = l.Links.Apply(ctx, t)
	return err
}

// newFederator starts cluster c's federation: the federation stream on a
// free loopback port (its address goes into the tokens c generates) and
// the gateway probes, both ended by the returned stop. Peers' bundles go
// into c.bundles, which c's Workload API serves as federated_bundles.
func newFederator(ctx context.Context, c *cluster, wg *sync.WaitGroup) (federator, func(), error) {
	svid, err := c.authority.NewSVIDSource(c.ctlID, 0)
	if err != nil {
		return nil, nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("federation listener: %w", err)
	}
	fl, err := federation.New(federation.Options{
		Cluster: c.name, TrustDomain: c.td, SVID: svid, Bundle: c.authority, Federated: c.bundles,
		Advertise:    []string{lis.Addr().String()},
		GatewayAddrs: []string{c.gateway.listen}, GatewayID: c.gateway.id,
		Heartbeat: fedHeartbeat, Timeout: fedTimeout, ProbeInterval: fedProbe,
		Logger: c.m.log.With("cluster", c.name),
	})
	if err != nil {
		lis.Close()
		return nil, nil, err
	}
	c.fedAddr = lis.Addr().String()
	wg.Go(func() { _ = fl.Serve(lis) })
	wg.Go(func() { _ = fl.Run(ctx) })
	return links{fl}, fl.Close, nil
}
