package proxy

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/causeway-mesh/causeway/proxy/resilience"
	"github.com/causeway-mesh/causeway/spec"
)

// routingState is everything a request needs to be routed, built by Apply
// from one NodeConfig and never modified after: requests load it once (one
// atomic pointer read) and keep it to the end, which is what makes swaps safe
// for requests in flight.
type routingState struct {
	// ready is false only for the empty state a proxy starts with, before
	// its first config: it routes nothing and /ready says 503.
	ready   bool
	cfg     *spec.NodeConfig
	table   *spec.Table
	applied time.Time
	// clusters holds the cluster ports this config may send to.
	clusters map[clusterKey]*clusterPort
	// upstreams holds the policy of every upstream service the node may call.
	upstreams map[spec.Key]*upstreamPolicy
	// inbound maps a service port number of the node's own services to where
	// the local app serves it.
	inbound map[int32]*inboundPort
	// transparent maps the original destinations of redirected outbound
	// connections to the service port they reach (transparent.go).
	transparent map[netip.AddrPort]*fixedListener
}

// upstreamPolicy is the merged Policy of one upstream service with its retry
// budget (shared by every config, like clusterPort).
type upstreamPolicy struct {
	Policy
	name          string                   // "ns/name", the metric label
	routeTimeouts map[string]time.Duration // by match name
	budget        *resilience.RetryBudget
}

func (u *upstreamPolicy) timeout(match string) time.Duration {
	if d, ok := u.routeTimeouts[match]; ok && match != "" {
		return d
	}
	return u.Timeout.D()
}

// inboundPort is one port of a service the node backs.
type inboundPort struct {
	svc     spec.Key
	name    string // "ns/name", the metric label
	port    spec.Port
	appAddr string // appHost:targetPort
}

// portOf returns the port of an upstream service, if the config has it.
func (s *routingState) portOf(svc spec.Key, port int32) (spec.Port, bool) {
	up := s.table.Upstream(svc)
	if up == nil {
		return spec.Port{}, false
	}
	for _, p := range up.Ports {
		if p.Port == port {
			return p, true
		}
	}
	return spec.Port{}, false
}

// cluster returns the cluster port a backend service is reached on.
func (s *routingState) cluster(backend spec.Key, port int32, proto spec.Protocol) *clusterPort {
	return s.clusters[clusterKey{Service: backend, Port: port, Proto: proto}]
}

// pickWeighted chooses one backend of a TrafficSplit by weighted random
// choice. Why not smooth weighted round-robin: SWRR is exact over any window
// but keeps per-route counters that every request must lock or CAS, and it
// restarts its cycle on every config swap; weighted random is stateless,
// lock-free (math/rand/v2's runtime source is per-thread) and unaffected by
// swaps, and over the thousands of requests a split is judged on its error
// is a fraction of a percent (binomial: ±0.5 % at 1σ for 90/10 over 4000).
func pickWeighted(bs []spec.WeightedCluster) (spec.WeightedCluster, bool) {
	switch len(bs) {
	case 0:
		return spec.WeightedCluster{}, false
	case 1:
		return bs[0], true
	}
	var total int64
	for _, b := range bs {
		if b.Weight > 0 {
			total += b.Weight
		}
	}
	if total <= 0 {
		return bs[0], true
	}
	n := rand.Int64N(total)
	for _, b := range bs {
		if b.Weight <= 0 {
			continue
		}
		if n < b.Weight {
			return b, true
		}
		n -= b.Weight
	}
	return bs[len(bs)-1], true
}

// buildState makes the routing state of a prepared config, taking the
// long-lived cluster ports and budgets from the proxy's registries (creating
// what is new). Called with Proxy.mu held.
func (p *Proxy) buildState(cfg *spec.NodeConfig, t *spec.Table) *routingState {
	st := &routingState{
		ready:     true,
		cfg:       cfg,
		table:     t,
		applied:   time.Now(),
		clusters:  map[clusterKey]*clusterPort{},
		upstreams: map[spec.Key]*upstreamPolicy{},
		inbound:   map[int32]*inboundPort{},
	}
	if p.boot.Outbound.Transparent != "" {
		st.transparent = buildTransparent(cfg, t)
	}
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		for _, port := range c.Ports {
			k := clusterKey{Service: c.Service, Port: port.Port, Proto: port.Protocol}
			cp := p.clusters[k]
			if cp == nil {
				pol := p.policyFor(c.Service)
				cp = newClusterPort(k, pol.Policy, newBalancer(pol.Outlier), newBreaker(pol.Breaker), p.mtls)
				useH2(cp, pol.Policy)
				p.clusters[k] = cp
			}
			if n := cp.update(c); n > 0 {
				p.log.Warn("proxy: UDP is not carried through east-west gateways (no DTLS); those endpoints are left out", "cluster", cp.name, "endpoints", n)
			}
			st.clusters[k] = cp
		}
	}
	for i := range cfg.Upstreams {
		svc := cfg.Upstreams[i].Service
		up := p.upstreams[svc]
		if up == nil {
			up = p.policyFor(svc)
			up.budget = newBudget(up.Retry)
			p.upstreams[svc] = up
		}
		st.upstreams[svc] = up
	}
	host := p.boot.Inbound.AppHost
	if host == "" {
		host = "127.0.0.1"
	}
	for _, s := range cfg.Inbound.Services {
		for _, port := range s.Ports {
			if _, dup := st.inbound[port.Port]; dup {
				continue // the preamble names a port only; the first service wins
			}
			target := port.TargetPort
			if target == 0 {
				target = port.Port
			}
			st.inbound[port.Port] = &inboundPort{svc: s.Key, name: s.Key.String(), port: port, appAddr: net.JoinHostPort(host, strconv.Itoa(int(target)))}
		}
	}
	return st
}

// emptyState is what a proxy serves before its first config: every lookup
// misses, so requests get 503 and connections are closed, never a panic.
func emptyState() *routingState {
	cfg := &spec.NodeConfig{Mode: spec.ModeStrict}
	t, _ := cfg.Prepare()
	return &routingState{cfg: cfg, table: t, clusters: map[clusterKey]*clusterPort{},
		upstreams: map[spec.Key]*upstreamPolicy{}, inbound: map[int32]*inboundPort{}}
}

// policyFor merges the bootstrap's policy for one upstream service.
func (p *Proxy) policyFor(svc spec.Key) *upstreamPolicy {
	base := p.boot.Policy.merge(DefaultPolicy)
	up := &upstreamPolicy{Policy: base, name: svc.String(), routeTimeouts: map[string]time.Duration{}}
	for _, sp := range p.boot.Services {
		if k, err := ParseKey(sp.Service); err != nil || k != svc {
			continue
		}
		up.Policy = sp.Policy.merge(base)
		for _, r := range sp.Routes {
			up.routeTimeouts[r.Match] = r.Timeout.D()
		}
	}
	return up
}

// sweep drops cluster ports and budgets no config uses any more, closing
// their idle connections; requests still using them finish normally since
// they hold their own references. Called with Proxy.mu held.
func (p *Proxy) sweep(st *routingState) {
	for k, cp := range p.clusters {
		if st.clusters[k] == nil {
			cp.close()
			closeH2(cp)
			delete(p.clusters, k)
		}
	}
	for k := range p.upstreams {
		if st.upstreams[k] == nil {
			delete(p.upstreams, k)
		}
	}
}
