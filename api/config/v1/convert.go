package configv1

import (
	"fmt"
	"maps"
	"net/netip"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// FromSpec encodes a compiled config for the wire.
func FromSpec(c *spec.NodeConfig) *NodeConfig {
	return &NodeConfig{
		Version:     c.Version,
		Node:        NodeFromSpec(c.Node, ""),
		TrustDomain: c.TrustDomain,
		Mode:        string(c.Mode),
		Inbound: &Inbound{
			Services: mapSlice(c.Inbound.Services, func(s spec.InboundService) *InboundService {
				return &InboundService{Key: keyFrom(s.Key), Ports: mapSlice(s.Ports, portFrom)}
			}),
			Policies: mapSlice(c.Inbound.Policies, func(p spec.InboundPolicy) *InboundPolicy {
				return &InboundPolicy{Key: keyFrom(p.Key), Sources: idsFrom(p.Sources), Rules: mapSlice(p.Rules, func(r spec.InboundRule) *InboundRule {
					return &InboundRule{Kind: string(r.Kind), Route: keyFrom(r.Route), Matches: mapSlice(r.Matches, matchFrom), Ports: r.Ports}
				})}
			}),
		},
		Upstreams: mapSlice(c.Upstreams, func(u spec.Upstream) *Upstream {
			return &Upstream{
				Service: keyFrom(u.Service),
				Ports:   mapSlice(u.Ports, portFrom),
				Routes: mapSlice(u.Routes, func(r spec.UpstreamRoute) *UpstreamRoute {
					return &UpstreamRoute{Split: keyFrom(r.Split), Kind: string(r.Kind), Route: keyFrom(r.Route),
						Matches: mapSlice(r.Matches, matchFrom), Ports: r.Ports, Backends: mapSlice(r.Backends, weightedFrom)}
				}),
				Default:    mapSlice(u.Default, weightedFrom),
				ClusterIps: u.ClusterIPs,
				Export:     u.Export,
			}
		}),
		Clusters: mapSlice(c.Clusters, func(cl spec.Cluster) *Cluster {
			return &Cluster{Service: keyFrom(cl.Service), Ports: mapSlice(cl.Ports, portFrom),
				Identities: idsFrom(cl.Identities), Endpoints: mapSlice(cl.Endpoints, endpointFrom)}
		}),
	}
}

// NodeFromSpec encodes a node and the address of its admin server.
func NodeFromSpec(n spec.Node, adminAddr string) *Node {
	return &Node{Id: n.ID, Cluster: n.Cluster, Identity: idFrom(n.Identity),
		Services: mapSlice(n.Services, keyFrom), AdminAddress: adminAddr, Addresses: n.Addresses}
}

// ToSpec decodes a node. Every SPIFFE ID is parsed; an invalid one is an
// error naming the field, so a corrupt message is refused (NACKed) rather
// than half-applied.
func (n *Node) ToSpec() (spec.Node, error) {
	if n == nil {
		return spec.Node{}, fmt.Errorf("node: missing")
	}
	id, err := idTo(n.GetIdentity())
	if err != nil {
		return spec.Node{}, fmt.Errorf("node.identity: %w", err)
	}
	for i, a := range n.GetAddresses() {
		if _, err := netip.ParseAddr(a); err != nil {
			return spec.Node{}, fmt.Errorf("node.addresses[%d]: %w", i, err)
		}
	}
	return spec.Node{ID: n.GetId(), Cluster: n.GetCluster(), Identity: id, Services: mapSlice(n.GetServices(), keyTo),
		Addresses: nilIfEmpty(n.GetAddresses())}, nil
}

// ToSpec decodes a config from the wire. Slices that are empty on the wire
// decode as nil, as spec.Compile leaves them.
func (c *NodeConfig) ToSpec() (*spec.NodeConfig, error) {
	if c == nil {
		return nil, fmt.Errorf("config: missing")
	}
	node, err := c.GetNode().ToSpec()
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", c.GetVersion(), err)
	}
	out := &spec.NodeConfig{Version: c.GetVersion(), Node: node, TrustDomain: c.GetTrustDomain(), Mode: spec.Mode(c.GetMode())}
	in := c.GetInbound()
	out.Inbound.Services = mapSlice(in.GetServices(), func(s *InboundService) spec.InboundService {
		return spec.InboundService{Key: keyTo(s.GetKey()), Ports: mapSlice(s.GetPorts(), portTo)}
	})
	for i, p := range in.GetPolicies() {
		srcs, err := idsTo(p.GetSources())
		if err != nil {
			return nil, fmt.Errorf("config %s: inbound.policies[%d].sources%w", c.GetVersion(), i, err)
		}
		out.Inbound.Policies = append(out.Inbound.Policies, spec.InboundPolicy{Key: keyTo(p.GetKey()), Sources: srcs,
			Rules: mapSlice(p.GetRules(), func(r *InboundRule) spec.InboundRule {
				return spec.InboundRule{Kind: spec.RouteKind(r.GetKind()), Route: keyTo(r.GetRoute()),
					Matches: mapSlice(r.GetMatches(), matchTo), Ports: nilIfEmpty(r.GetPorts())}
			})})
	}
	out.Upstreams = mapSlice(c.GetUpstreams(), func(u *Upstream) spec.Upstream {
		return spec.Upstream{
			Service: keyTo(u.GetService()),
			Ports:   mapSlice(u.GetPorts(), portTo),
			Routes: mapSlice(u.GetRoutes(), func(r *UpstreamRoute) spec.UpstreamRoute {
				return spec.UpstreamRoute{Split: keyTo(r.GetSplit()), Kind: spec.RouteKind(r.GetKind()), Route: keyTo(r.GetRoute()),
					Matches: mapSlice(r.GetMatches(), matchTo), Ports: nilIfEmpty(r.GetPorts()), Backends: mapSlice(r.GetBackends(), weightedTo)}
			}),
			Default:    mapSlice(u.GetDefault(), weightedTo),
			ClusterIPs: nilIfEmpty(u.GetClusterIps()),
			Export:     u.GetExport(),
		}
	})
	for i, cl := range c.GetClusters() {
		ids, err := idsTo(cl.GetIdentities())
		if err != nil {
			return nil, fmt.Errorf("config %s: clusters[%d].identities%w", c.GetVersion(), i, err)
		}
		eps := make([]spec.Endpoint, 0, len(cl.GetEndpoints()))
		for j, ep := range cl.GetEndpoints() {
			e, err := endpointTo(ep)
			if err != nil {
				return nil, fmt.Errorf("config %s: clusters[%d].endpoints[%d].%w", c.GetVersion(), i, j, err)
			}
			eps = append(eps, e)
		}
		out.Clusters = append(out.Clusters, spec.Cluster{Service: keyTo(cl.GetService()), Ports: mapSlice(cl.GetPorts(), portTo),
			Identities: ids, Endpoints: nilIfEmpty(eps)})
	}
	return out, nil
}

func mapSlice[A, B any](in []A, f func(A) B) []B {
	if len(in) == 0 {
		return nil
	}
	out := make([]B, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func keyFrom(k spec.Key) *Key {
	return &Key{Cluster: k.Cluster, Namespace: k.Namespace, Name: k.Name}
}

func keyTo(k *Key) spec.Key {
	return spec.Key{Cluster: k.GetCluster(), Namespace: k.GetNamespace(), Name: k.GetName()}
}

func portFrom(p spec.Port) *Port {
	return &Port{Name: p.Name, Port: p.Port, Protocol: string(p.Protocol), TargetPort: p.TargetPort}
}

func portTo(p *Port) spec.Port {
	return spec.Port{Name: p.GetName(), Port: p.GetPort(), Protocol: spec.Protocol(p.GetProtocol()), TargetPort: p.GetTargetPort()}
}

func matchFrom(m spec.Match) *Match {
	return &Match{Name: m.Name, PathRegex: m.PathRegex, Methods: m.Methods, Headers: m.Headers}
}

func matchTo(m *Match) spec.Match {
	return spec.Match{Name: m.GetName(), PathRegex: m.GetPathRegex(), Methods: nilIfEmpty(m.GetMethods()), Headers: cloneMap(m.GetHeaders())}
}

func weightedFrom(w spec.WeightedCluster) *WeightedCluster {
	out := &WeightedCluster{Service: keyFrom(w.Service), Weight: w.Weight}
	// A zero Split key means "no TrafficSplit put it there"; leaving the
	// field unset keeps that distinguishable on the wire.
	if w.Split != (spec.Key{}) {
		out.Split = keyFrom(w.Split)
	}
	return out
}

func weightedTo(w *WeightedCluster) spec.WeightedCluster {
	return spec.WeightedCluster{Service: keyTo(w.GetService()), Weight: w.GetWeight(), Split: keyTo(w.GetSplit())}
}

func endpointFrom(e spec.Endpoint) *Endpoint {
	out := &Endpoint{Addr: e.Addr, Port: e.Port, ServicePort: e.ServicePort, Ready: e.Ready, Zone: e.Zone,
		Labels: e.Labels, Identity: idFrom(e.Identity), Gateway: idFrom(e.Gateway), Priority: e.Priority}
	if e.Remote != (spec.Key{}) {
		out.Remote = keyFrom(e.Remote)
	}
	return out
}

func endpointTo(e *Endpoint) (spec.Endpoint, error) {
	id, err := idTo(e.GetIdentity())
	if err != nil {
		return spec.Endpoint{}, fmt.Errorf("identity: %w", err)
	}
	gw, err := idTo(e.GetGateway())
	if err != nil {
		return spec.Endpoint{}, fmt.Errorf("gateway: %w", err)
	}
	return spec.Endpoint{Addr: e.GetAddr(), Port: e.GetPort(), ServicePort: e.GetServicePort(), Ready: e.GetReady(),
		Zone: e.GetZone(), Labels: cloneMap(e.GetLabels()), Identity: id, Gateway: gw, Remote: keyTo(e.GetRemote()),
		Priority: e.GetPriority()}, nil
}

func cloneMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func idFrom(id spiffeid.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func idTo(s string) (spiffeid.ID, error) {
	if s == "" {
		return spiffeid.ID{}, nil
	}
	return spiffeid.FromString(s)
}

func idsFrom(ids []spiffeid.ID) []string { return mapSlice(ids, idFrom) }

// idsTo parses a list of SPIFFE IDs; its error starts with "[i]" so callers
// can append it to a field path.
func idsTo(ss []string) ([]spiffeid.ID, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]spiffeid.ID, len(ss))
	for i, s := range ss {
		id, err := spiffeid.FromString(s)
		if err != nil {
			return nil, fmt.Errorf("[%d]: %q: %w", i, s, err)
		}
		out[i] = id
	}
	return out, nil
}
