package gateway

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/proxy/balance"
	"github.com/causeway-mesh/causeway/spec"
)

// nsName is a service as an SNI names it: the gateway serves its own
// cluster's services only, so Key.Cluster plays no part.
type nsName struct{ namespace, name string }

// portKey is one port of one exported service.
type portKey struct {
	svc  nsName
	port int32
}

// state is what a connection needs to be routed, built by Apply from one
// NodeConfig and never modified afterwards: a connection loads it once
// (one atomic pointer read), so a swap never changes a decision half made.
type state struct {
	cfg     *spec.NodeConfig
	applied time.Time
	// services holds every service the config names, exported or not, so
	// "not exported" and "unknown" are told apart in the refusal counts.
	services map[nsName]*service
}

type service struct {
	exported bool
	ports    map[int32]*exportedPort // nil unless exported
}

// exportedPort is one port the gateway forwards. The balancer is shared by
// every state that has the port (Gateway.balancers), so EWMA latencies and
// ejections survive config swaps.
type exportedPort struct {
	key   portKey
	name  string // "ns/name:port", the metric label
	proto spec.Protocol
	lb    *balance.Balancer
	addrs []string // the endpoints given to lb, sorted
}

// buildState checks cfg and makes its routing state. lbs is the registry of
// long-lived balancers, created as needed; it is only read and written on
// Apply's goroutine (under Gateway.mu). Endpoint lists are returned in the
// state and pushed into the balancers by Apply only once the whole config
// is accepted, so a refused config changes nothing.
func buildState(cfg *spec.NodeConfig, own spiffeid.TrustDomain, lbs map[portKey]*balance.Balancer) (*state, error) {
	if cfg == nil {
		return nil, fmt.Errorf("gateway: config is nil")
	}
	if cfg.TrustDomain != "" && !own.IsZero() && cfg.TrustDomain != own.Name() {
		return nil, fmt.Errorf("gateway: config %s: trustDomain %q is not the gateway's (%s, from its SVID)", cfg.Version, cfg.TrustDomain, own.Name())
	}
	clusters := make(map[spec.Key]*spec.Cluster, len(cfg.Clusters))
	for i := range cfg.Clusters {
		clusters[cfg.Clusters[i].Service] = &cfg.Clusters[i]
	}
	st := &state{cfg: cfg, applied: time.Now(), services: map[nsName]*service{}}
	for i, up := range cfg.Upstreams {
		k := nsName{up.Service.Namespace, up.Service.Name}
		if up.Service.Cluster != "" {
			// An imported service (another cluster's) is never re-exported:
			// the gateway only fronts its own cluster.
			continue
		}
		if _, dup := st.services[k]; dup {
			return nil, fmt.Errorf("gateway: config %s: upstreams[%d]: service %s listed twice", cfg.Version, i, up.Service)
		}
		svc := &service{exported: up.Export}
		st.services[k] = svc
		if !up.Export {
			continue
		}
		svc.ports = map[int32]*exportedPort{}
		for j, p := range up.Ports {
			if p.Port <= 0 || p.Port > 65535 {
				return nil, fmt.Errorf("gateway: config %s: upstreams[%d] %s: ports[%d]: port %d is not 1-65535", cfg.Version, i, up.Service, j, p.Port)
			}
			pk := portKey{k, p.Port}
			lb := lbs[pk]
			if lb == nil {
				lb = balance.New(balance.Options{})
				lbs[pk] = lb
			}
			svc.ports[p.Port] = &exportedPort{
				key:   pk,
				name:  up.Service.String() + ":" + strconv.Itoa(int(p.Port)),
				proto: p.Protocol,
				lb:    lb,
				addrs: endpointsFor(clusters[up.Service], p.Port),
			}
		}
	}
	// Balancers of ports no longer exported are dropped with the config.
	for pk := range lbs {
		if s := st.services[pk.svc]; s == nil || s.ports[pk.port] == nil {
			delete(lbs, pk)
		}
	}
	return st, nil
}

// endpointsFor lists the addresses the gateway may forward port to: ready
// endpoints of the service that are Causeway sidecars (the caller speaks
// mTLS and the preamble to them, end to end, so a bare app endpoint could
// not answer) and are not themselves behind a gateway.
func endpointsFor(c *spec.Cluster, port int32) []string {
	if c == nil {
		return []string{}
	}
	addrs := []string{}
	for _, e := range c.Endpoints {
		switch {
		case !e.Ready, !e.Gateway.IsZero():
			continue
		case e.ServicePort != 0 && e.ServicePort != port:
			continue
		case e.Identity.IsZero() && e.ServicePort != 0:
			continue // an app endpoint, not a sidecar
		}
		addrs = append(addrs, net.JoinHostPort(e.Addr, strconv.Itoa(int(e.Port))))
	}
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

// exports reports whether pk is an exported port of s (nil: none is).
func (s *state) exports(pk portKey) bool {
	if s == nil {
		return false
	}
	svc := s.services[pk.svc]
	return svc != nil && svc.ports[pk.port] != nil && svc.ports[pk.port].proto != spec.ProtocolUDP
}

// lookup applies the routing checks to a parsed SNI target, in order, and
// returns the port to forward to or the refusal reason.
func (s *state) lookup(t Target) (*exportedPort, string) {
	svc := s.services[nsName{t.Service.Namespace, t.Service.Name}]
	switch {
	case svc == nil:
		return nil, ReasonUnknownSvc
	case !svc.exported:
		return nil, ReasonNotExported
	}
	ep := svc.ports[t.Port]
	switch {
	case ep == nil:
		return nil, ReasonUnknownPort
	case ep.proto == spec.ProtocolUDP:
		return nil, ReasonUDP
	}
	return ep, ""
}
