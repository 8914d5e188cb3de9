package spec

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Key names an object of the mesh. Cluster is empty for the local cluster.
type Key struct {
	Cluster   string `json:"cluster,omitempty"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String renders "ns/name", or "cluster/ns/name" for a remote object.
func (k Key) String() string {
	if k.Cluster != "" {
		return k.Cluster + "/" + k.Namespace + "/" + k.Name
	}
	return k.Namespace + "/" + k.Name
}

// Less orders keys by cluster, namespace, then name.
func (k Key) Less(o Key) bool {
	if k.Cluster != o.Cluster {
		return k.Cluster < o.Cluster
	}
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.Name < o.Name
}

// Protocol is what a service port speaks.
type Protocol string

const (
	ProtocolHTTP  Protocol = "http"  // HTTP/1.1 (and h2 when both sides offer it)
	ProtocolHTTP2 Protocol = "http2" // HTTP/2, prior knowledge allowed
	ProtocolGRPC  Protocol = "grpc"  // HTTP/2 with grpc-status in trailers
	ProtocolTCP   Protocol = "tcp"   // opaque bytes
	ProtocolUDP   Protocol = "udp"   // datagrams
)

// IsHTTP reports whether traffic on the protocol is handled at L7.
func (p Protocol) IsHTTP() bool {
	return p == ProtocolHTTP || p == ProtocolHTTP2 || p == ProtocolGRPC
}

// Valid reports whether p is one of the known protocols.
func (p Protocol) Valid() bool {
	switch p {
	case ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP, ProtocolUDP:
		return true
	}
	return false
}

// Port is one port of a Service.
type Port struct {
	Name     string   `json:"name,omitempty"`
	Port     int32    `json:"port"`
	Protocol Protocol `json:"protocol"`
	// TargetPort is the port the workload listens on; 0 means Port.
	TargetPort int32 `json:"targetPort,omitempty"`
}

// Endpoint is one address that serves a Service. For a meshed workload the
// address is its sidecar's inbound listener.
type Endpoint struct {
	Addr string `json:"addr"`
	Port int32  `json:"port"`
	// ServicePort is the Service port this endpoint serves; 0 means every port
	// (a sidecar that demultiplexes by the original destination port).
	ServicePort int32             `json:"servicePort,omitempty"`
	Ready       bool              `json:"ready"`
	Zone        string            `json:"zone,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// Identity is the SPIFFE ID the endpoint proves with mTLS; zero when the
	// endpoint is not meshed.
	Identity spiffeid.ID `json:"identity,omitzero"`
	// Gateway, when set, says Addr:Port is an east-west gateway of another
	// cluster, proving this SPIFFE ID, that carries connections on to the
	// service there. A proxy opens mTLS to the gateway (SNI names the
	// service port), then mTLS end to end with one of the service's
	// identities inside it, so the destination sees the original caller.
	Gateway spiffeid.ID `json:"gateway,omitzero"`
	// Remote names the service behind the gateway as its own cluster calls
	// it (an import is renamed <name>-<cluster> here); the proxy asks the
	// gateway for it by SNI. Set exactly when Gateway is.
	Remote Key `json:"remote,omitzero"`
	// Priority orders endpoints for failover (Istio's locality failover,
	// Consul's failover targets): 0 is preferred, and a proxy sends to
	// endpoints of priority n only while no endpoint of a lower priority is
	// available (ready, not ejected by outlier detection, reachable). A
	// Service exported by this cluster and by linked ones keeps its own
	// endpoints at 0 and gets the others' gateways at 1 (BuildWithImports).
	Priority int32 `json:"priority,omitempty"`
}

// Service is an addressable set of endpoints with ports.
type Service struct {
	Key        Key           `json:"key"`
	Ports      []Port        `json:"ports"`
	Identities []spiffeid.ID `json:"identities,omitempty"`
	Endpoints  []Endpoint    `json:"endpoints,omitempty"`
	// ClusterIPs are the virtual addresses apps dial for the service (a
	// Kubernetes Service's spec.clusterIPs; none for a headless one). A
	// transparent proxy maps a redirected connection to one of them, at a
	// service port, back to the service.
	ClusterIPs []string `json:"clusterIPs,omitempty"`
	// Export makes the service reachable from linked clusters and meshes.
	Export bool `json:"export,omitempty"`
	// Origin names the input this came from, for diagnostics; not serialised.
	Origin Origin `json:"-"`
}

// Port returns the service port with the given number.
func (s *Service) Port(n int32) (Port, bool) {
	for _, p := range s.Ports {
		if p.Port == n {
			return p, true
		}
	}
	return Port{}, false
}

// RouteKind is the layer a Route matches at.
type RouteKind string

const (
	RouteHTTP RouteKind = "http"
	RouteTCP  RouteKind = "tcp"
	RouteUDP  RouteKind = "udp"
)

// Match is one named HTTP match of a Route (an HTTPRouteGroup entry). Inside a
// Match every condition must hold (AND); a Route's matches are alternatives (OR).
type Match struct {
	Name string `json:"name"`
	// PathRegex is anchored at the start of the path (SMI); "" matches every
	// path. A path that is not valid UTF-8 is read as Go's regexp reads it:
	// each invalid byte as U+FFFD.
	PathRegex string `json:"pathRegex,omitempty"`
	// Methods lists allowed methods; empty or "*" means every method.
	Methods []string `json:"methods,omitempty"`
	// Headers maps a header name (any case) to a regex its value must match.
	Headers map[string]string `json:"headers,omitempty"`
}

// Route is an HTTPRouteGroup, TCPRoute or UDPRoute.
type Route struct {
	Key     Key       `json:"key"`
	Kind    RouteKind `json:"kind"`
	Matches []Match   `json:"matches,omitempty"`
	// Ports limits a TCP/UDP route; empty means every port.
	Ports  []int32 `json:"ports,omitempty"`
	Origin Origin  `json:"-"`
}

// RouteRef points at a Route and, for HTTP, a subset of its matches by name
// (empty = every match of the route).
type RouteRef struct {
	Kind    RouteKind `json:"kind"`
	Key     Key       `json:"key"`
	Matches []string  `json:"matches,omitempty"`
}

// Backend is one weighted target of a Split. Weights are relative; they are
// kept in thousandths so SMI v1alpha1 Quantities ("500m") survive exactly.
type Backend struct {
	Service Key   `json:"service"`
	Weight  int64 `json:"weight"`
}

// Split divides traffic addressed to Root among Backends. When Matches is set
// only requests matching one of them are split; the rest go to Root.
type Split struct {
	Key      Key        `json:"key"`
	Root     Key        `json:"root"`
	Backends []Backend  `json:"backends"`
	Matches  []RouteRef `json:"matches,omitempty"`
	Origin   Origin     `json:"-"`
}

// AccessRule allows the policy's sources the route it names. Ports narrows
// the rule (TrafficTarget v1alpha2 destination.port); empty = every port.
type AccessRule struct {
	Route RouteRef `json:"route"`
	Ports []int32  `json:"ports,omitempty"`
}

// AccessPolicy is a TrafficTarget: callers with one of Sources' identities may
// reach workloads with the Destination identity through the Rules. Access is
// denied by default; policies only add.
type AccessPolicy struct {
	Key         Key           `json:"key"`
	Destination spiffeid.ID   `json:"destination"`
	Sources     []spiffeid.ID `json:"sources"`
	Rules       []AccessRule  `json:"rules"`
	Origin      Origin        `json:"-"`
}

// LinkState is how a link to another cluster or mesh stands.
type LinkState string

const (
	LinkPending LinkState = "pending"
	LinkActive  LinkState = "active"
	LinkFailed  LinkState = "failed"
)

// Link is a peering with another cluster or mesh.
type Link struct {
	Cluster      string    `json:"cluster"`
	TrustDomain  string    `json:"trustDomain"`
	ControlAddrs []string  `json:"controlAddrs,omitempty"`
	GatewayAddrs []string  `json:"gatewayAddrs,omitempty"`
	Bundle       []byte    `json:"bundle,omitempty"` // PEM roots of the peer
	State        LinkState `json:"state"`
}

// Mode says what happens to traffic no AccessPolicy mentions.
type Mode string

const (
	// ModeStrict denies callers no policy allows (SMI's deny by default).
	ModeStrict Mode = "strict"
	// ModePermissive allows every caller; mTLS is still used when possible.
	ModePermissive Mode = "permissive"
)

// Snapshot is one immutable, consistent, deterministic state of the mesh.
// Build it with Build; never modify one after.
type Snapshot struct {
	// Version is the content hash of everything else, hex-encoded.
	Version     string         `json:"version"`
	TrustDomain string         `json:"trustDomain,omitempty"`
	Mode        Mode           `json:"mode"`
	Services    []Service      `json:"services,omitempty"`
	Routes      []Route        `json:"routes,omitempty"`
	Splits      []Split        `json:"splits,omitempty"`
	Policies    []AccessPolicy `json:"policies,omitempty"`
	Links       []Link         `json:"links,omitempty"`
}

// Identity returns the SPIFFE ID of a service account in a trust domain:
// spiffe://<td>/ns/<ns>/sa/<sa> (DESIGN.md §4).
func Identity(trustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("trust domain %q: %w", trustDomain, err)
	}
	return spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
}

// Origin is the input object a model object was translated from, kept so that
// Build can say which file and object a problem is in.
type Origin struct {
	Source Source
	Object Object
	// Path is the field path of the model object inside the input object,
	// e.g. "spec.backends[1]"; "" for the object itself.
	Path string
	// Aliases rename field-path prefixes in diagnostics for inputs whose
	// fields are not where the model's names suggest (SMI TrafficTarget
	// v1alpha1 keeps "specs" and "sources" at the top level): "spec.rules" ->
	// "specs". The longest matching prefix wins.
	Aliases map[string]string
}

// Field renders a field path of the model object as the input spells it.
func (o Origin) Field(field string) string {
	full := joinField(o.Path, field)
	best := ""
	for from := range o.Aliases {
		if len(from) > len(best) && (full == from || strings.HasPrefix(full, from+".") || strings.HasPrefix(full, from+"[")) {
			best = from
		}
	}
	if best == "" {
		return full
	}
	return o.Aliases[best] + full[len(best):]
}
