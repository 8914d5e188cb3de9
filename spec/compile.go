package spec

import (
	"slices"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Node is a proxy or gateway asking for its config.
type Node struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster,omitempty"`
	// Identity is the SPIFFE ID the node's workload serves as; inbound policy
	// is compiled for it. Zero for a node that only calls out.
	Identity spiffeid.ID `json:"identity,omitzero"`
	// Services are the services the node's workload says it backs.
	Services []Key `json:"services,omitempty"`
	// Addresses are the workload's own addresses (a pod's IPs). The node
	// also backs every service with an endpoint at one of them that proves
	// the node's identity, so a Service created after the pod started is
	// served without restarting it. Local-mode nodes share 127.0.0.1 and
	// leave this empty.
	Addresses []string `json:"addresses,omitempty"`
}

// NodeConfig is what one proxy needs, and nothing more.
type NodeConfig struct {
	// Version is the content hash of the rest; it changes only when what this
	// node does changes, so only such nodes get a push.
	Version     string     `json:"version"`
	Node        Node       `json:"node"`
	TrustDomain string     `json:"trustDomain,omitempty"`
	Mode        Mode       `json:"mode"`
	Inbound     Inbound    `json:"inbound"`
	Upstreams   []Upstream `json:"upstreams,omitempty"`
	Clusters    []Cluster  `json:"clusters,omitempty"`
}

// Inbound is the node's side as a destination.
type Inbound struct {
	Services []InboundService `json:"services,omitempty"`
	Policies []InboundPolicy  `json:"policies,omitempty"`
}

// InboundService is a service the node backs, with its ports.
type InboundService struct {
	Key   Key    `json:"key"`
	Ports []Port `json:"ports"`
}

// InboundPolicy is an AccessPolicy whose destination is this node, with its
// route references resolved.
type InboundPolicy struct {
	Key     Key           `json:"key"`
	Sources []spiffeid.ID `json:"sources"`
	Rules   []InboundRule `json:"rules"`
}

// InboundRule allows HTTP requests matching one of Matches, or (TCP/UDP) any
// traffic on Ports. Empty Ports means every port.
type InboundRule struct {
	Kind    RouteKind `json:"kind"`
	Route   Key       `json:"route"`
	Matches []Match   `json:"matches,omitempty"`
	Ports   []int32   `json:"ports,omitempty"`
}

// Upstream is a service the node may call, with how its traffic is divided.
type Upstream struct {
	Service Key    `json:"service"`
	Ports   []Port `json:"ports"`
	// ClusterIPs are the service's virtual addresses (Service.ClusterIPs).
	ClusterIPs []string `json:"clusterIPs,omitempty"`
	// Export says linked clusters may reach the service through this
	// cluster's east-west gateway (Service.Export).
	Export bool `json:"export,omitempty"`
	// Routes are tried in order; the first that matches decides.
	Routes []UpstreamRoute `json:"routes,omitempty"`
	// Default takes what no route matched.
	Default []WeightedCluster `json:"default"`
}

// UpstreamRoute sends traffic matching an HTTP match (or, for TCP/UDP, on one
// of Ports) to weighted backends. It comes from a TrafficSplit with matches.
type UpstreamRoute struct {
	Split    Key               `json:"split"`
	Kind     RouteKind         `json:"kind"`
	Route    Key               `json:"route"`
	Matches  []Match           `json:"matches,omitempty"`
	Ports    []int32           `json:"ports,omitempty"`
	Backends []WeightedCluster `json:"backends"`
}

// WeightedCluster is a backend with a relative weight in thousandths; Split
// names the TrafficSplit that put it there (zero when there is none).
type WeightedCluster struct {
	Service Key   `json:"service"`
	Weight  int64 `json:"weight"`
	Split   Key   `json:"split,omitzero"`
}

// Cluster is a set of endpoints the node may send to: one service's.
type Cluster struct {
	Service    Key           `json:"service"`
	Ports      []Port        `json:"ports"`
	Identities []spiffeid.ID `json:"identities,omitempty"`
	Endpoints  []Endpoint    `json:"endpoints,omitempty"`
}

// Compile gives the config of one node. Snapshot must come from Build.
func Compile(s *Snapshot, node Node) *NodeConfig {
	c := &NodeConfig{Node: node, TrustDomain: s.TrustDomain, Mode: s.Mode}
	c.Node.Services = backedServices(s, node)
	for _, k := range c.Node.Services {
		if svc := s.Service(k); svc != nil {
			c.Inbound.Services = append(c.Inbound.Services, InboundService{Key: k, Ports: svc.Ports})
		}
	}
	if !node.Identity.IsZero() {
		for _, p := range s.Policies {
			if p.Destination == node.Identity {
				c.Inbound.Policies = append(c.Inbound.Policies, compilePolicy(s, p))
			}
		}
	}

	used := map[Key]bool{}
	for i := range s.Services {
		svc := &s.Services[i]
		// A node in another cluster only reaches exported services; its own
		// cluster's services are all reachable.
		if node.Cluster != svc.Key.Cluster && !svc.Export {
			continue
		}
		up := Upstream{Service: svc.Key, Ports: svc.Ports, ClusterIPs: slices.Clone(svc.ClusterIPs), Export: svc.Export}
		for _, sp := range s.Splits {
			if sp.Root != svc.Key {
				continue
			}
			backends := weighted(sp)
			if len(sp.Matches) == 0 {
				up.Default = backends
				continue
			}
			for _, ref := range sp.Matches {
				r := s.route(ref.Kind, ref.Key)
				ur := UpstreamRoute{Split: sp.Key, Kind: ref.Kind, Route: ref.Key, Ports: r.Ports, Backends: backends}
				if ref.Kind == RouteHTTP {
					ur.Matches = selectMatches(r, ref.Matches)
				}
				up.Routes = append(up.Routes, ur)
			}
		}
		if up.Default == nil {
			up.Default = []WeightedCluster{{Service: svc.Key, Weight: 1000}}
		}
		for _, r := range up.Routes {
			for _, b := range r.Backends {
				used[b.Service] = true
			}
		}
		for _, b := range up.Default {
			used[b.Service] = true
		}
		c.Upstreams = append(c.Upstreams, up)
	}
	for i := range s.Services {
		svc := &s.Services[i]
		if used[svc.Key] {
			c.Clusters = append(c.Clusters, Cluster{Service: svc.Key, Ports: svc.Ports, Identities: svc.Identities, Endpoints: svc.Endpoints})
		}
	}
	c.Version = contentHash(c)
	return c
}

func weighted(sp Split) []WeightedCluster {
	out := make([]WeightedCluster, len(sp.Backends))
	for i, b := range sp.Backends {
		out[i] = WeightedCluster{Service: b.Service, Weight: b.Weight, Split: sp.Key}
	}
	return out
}

func selectMatches(r *Route, names []string) []Match {
	if len(names) == 0 {
		return slices.Clone(r.Matches)
	}
	var out []Match
	for _, m := range r.Matches {
		if slices.Contains(names, m.Name) {
			out = append(out, m)
		}
	}
	return out
}

func compilePolicy(s *Snapshot, p AccessPolicy) InboundPolicy {
	ip := InboundPolicy{Key: p.Key, Sources: p.Sources}
	for _, rule := range p.Rules {
		r := s.route(rule.Route.Kind, rule.Route.Key)
		ir := InboundRule{Kind: rule.Route.Kind, Route: rule.Route.Key}
		switch rule.Route.Kind {
		case RouteHTTP:
			ir.Matches = selectMatches(r, rule.Route.Matches)
			ir.Ports = rule.Ports
		default:
			var ok bool
			ir.Ports, ok = IntersectPorts(r.Ports, rule.Ports)
			if !ok {
				continue // the rule's ports and the route's ports share none
			}
		}
		ip.Rules = append(ip.Rules, ir)
	}
	return ip
}

// IntersectPorts intersects two port lists where empty means "all ports"
// (TCPRoute/UDPRoute ports, a TrafficTarget rule's ports). It returns false
// when the intersection is empty.
func IntersectPorts(a, b []int32) ([]int32, bool) {
	switch {
	case len(a) == 0:
		return b, true
	case len(b) == 0:
		return a, true
	}
	var out []int32
	for _, p := range a {
		if slices.Contains(b, p) {
			out = append(out, p)
		}
	}
	return out, len(out) > 0
}

// backedServices is what the node serves: the services it names, and those
// with an endpoint at one of its addresses carrying its identity. Sorted,
// without duplicates.
func backedServices(s *Snapshot, node Node) []Key {
	out := slices.Clone(node.Services)
	if len(node.Addresses) > 0 && !node.Identity.IsZero() {
		for i := range s.Services {
			svc := &s.Services[i]
			if slices.ContainsFunc(svc.Endpoints, func(e Endpoint) bool {
				return e.Identity == node.Identity && slices.Contains(node.Addresses, e.Addr)
			}) {
				out = append(out, svc.Key)
			}
		}
	}
	slices.SortFunc(out, compareKey)
	return slices.Compact(out)
}
