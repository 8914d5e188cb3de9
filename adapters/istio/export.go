package istio

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	gw "github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/spec"
)

// crossMeshCaveat is the limitation every cross-mesh entry carries: the
// Causeway gateway terminates only the outer mTLS and expects a Causeway
// sidecar's inner mTLS and port preamble inside it (gateway/doc.go).
const crossMeshCaveat = "Istio sidecars originate the outer mTLS (ISTIO_MUTUAL, SNI naming the service port) but not the inner mTLS and port preamble the destination's Causeway sidecar expects, so the gateway must trust Istio's CA (a federated SPIFFE bundle) and calls must leave through a Causeway sidecar or egress to be served"

// gatewayTarget is one service reached through an east-west gateway.
type gatewayTarget struct {
	svc      *spec.Service
	hosts    []string
	remote   spec.Key    // the service as the gateway's cluster names it
	td       string      // the gateway's trust domain, for the SNI
	gateway  spiffeid.ID // the gateway's identity
	addrs    []string    // host:port of the gateway
	name, ns string      // of the ServiceEntry
}

// exports renders ServiceEntries (and DestinationRules for the gateway's
// mTLS) for (1) services imported from linked clusters, whose endpoints
// are another cluster's gateway, and (2) this cluster's exported services,
// through this cluster's gateway (Options.GatewayAddrs), for an Istio mesh
// elsewhere.
func (r *renderer) exports() {
	for i := range r.s.Services {
		svc := &r.s.Services[i]
		switch {
		case svc.Key.Cluster != "":
			r.imported(svc)
		case svc.Export:
			r.exported(svc)
		}
	}
}

func (r *renderer) imported(svc *spec.Service) {
	t := gatewayTarget{svc: svc, ns: svc.Key.Namespace, name: svc.Key.Name + "-" + svc.Key.Cluster}
	t.hosts = []string{svc.Key.Name + "." + svc.Key.Namespace + ".svc." + svc.Key.Cluster}
	for _, e := range svc.Endpoints {
		if e.Gateway.IsZero() {
			continue
		}
		t.remote, t.gateway, t.td = e.Remote, e.Gateway, e.Gateway.TrustDomain().Name()
		t.addrs = append(t.addrs, net.JoinHostPort(e.Addr, strconv.Itoa(int(e.Port))))
	}
	if len(t.addrs) == 0 {
		gw.Warnf(&r.ds, svc.Origin, "", "istio: imported service %s not rendered: none of its endpoints is a Causeway gateway (spec Endpoint.Gateway), so there is no address to point a ServiceEntry at", svc.Key)
		return
	}
	r.serviceEntry(t)
}

func (r *renderer) exported(svc *spec.Service) {
	if len(r.o.GatewayAddrs) == 0 {
		gw.Warnf(&r.ds, svc.Origin, "", "istio: export of %s not rendered: the snapshot knows no address of this cluster's Causeway east-west gateway; pass --gateway-address HOST:PORT", svc.Key)
		return
	}
	cluster := cmp.Or(r.o.Cluster, r.s.TrustDomain)
	t := gatewayTarget{svc: svc, ns: svc.Key.Namespace, name: svc.Key.Name + "-" + cluster, remote: svc.Key, td: r.s.TrustDomain, addrs: r.o.GatewayAddrs, gateway: r.o.GatewayIdentity}
	t.hosts = []string{svc.Key.Name + "." + svc.Key.Namespace + ".svc." + cluster}
	if t.gateway.IsZero() {
		if td, err := spiffeid.TrustDomainFromString(r.s.TrustDomain); err == nil {
			t.gateway, _ = spiffeid.FromSegments(td, "ns", "causeway-system", "sa", "causeway-gateway")
		}
	}
	r.serviceEntry(t)
}

// istioProtocol names a port's protocol as a ServiceEntry port does.
func istioProtocol(p spec.Protocol) (string, bool) {
	switch p {
	case spec.ProtocolHTTP:
		return "HTTP", true
	case spec.ProtocolHTTP2:
		return "HTTP2", true
	case spec.ProtocolGRPC:
		return "GRPC", true
	case spec.ProtocolTCP:
		return "TCP", true
	}
	return "", false
}

func (r *renderer) serviceEntry(t gatewayTarget) {
	slices.Sort(t.addrs)
	t.addrs = slices.Compact(t.addrs)
	var ports, settings []any
	endpointPorts := map[string]any{}
	for _, p := range t.svc.Ports {
		proto, ok := istioProtocol(p.Protocol)
		if !ok {
			gw.Warnf(&r.ds, t.svc.Origin, "spec.ports", "istio: port %d (%s) of %s left out: the Causeway gateway carries no UDP", p.Port, p.Protocol, t.svc.Key)
			continue
		}
		name := cmp.Or(p.Name, string(p.Protocol)+"-"+strconv.Itoa(int(p.Port)))
		ports = append(ports, map[string]any{"number": int64(p.Port), "name": name, "protocol": proto})
		tls := map[string]any{"mode": "ISTIO_MUTUAL", "sni": strconv.Itoa(int(p.Port)) + "." + t.remote.Name + "." + t.remote.Namespace + ".svc." + t.td}
		if !t.gateway.IsZero() {
			tls["subjectAltNames"] = []any{t.gateway.String()}
		}
		settings = append(settings, map[string]any{"port": map[string]any{"number": int64(p.Port)}, "tls": tls})
		endpointPorts[name] = nil // filled per gateway address below
	}
	if len(ports) == 0 {
		return
	}
	resolution := "STATIC"
	var endpoints []any
	for _, a := range t.addrs {
		host, port, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			gw.Warnf(&r.ds, t.svc.Origin, "", "istio: gateway address %q of %s is not host:port; left out", a, t.svc.Key)
			continue
		}
		if _, err := netip.ParseAddr(host); err != nil {
			resolution = "DNS"
		}
		// Every service port is carried by the gateway's one port; the SNI
		// says which service port is meant.
		eps := map[string]any{}
		for name := range endpointPorts {
			eps[name] = int64(n)
		}
		endpoints = append(endpoints, map[string]any{"address": host, "ports": eps})
	}
	if len(endpoints) == 0 {
		return
	}
	r.add(gw.NewObject("networking.istio.io/v1", "ServiceEntry", t.ns, t.name, map[string]any{
		"hosts":      toAny(t.hosts),
		"location":   "MESH_INTERNAL",
		"resolution": resolution,
		"ports":      ports,
		"endpoints":  endpoints,
	}))
	r.add(gw.NewObject("networking.istio.io/v1", "DestinationRule", t.ns, t.name, map[string]any{
		"host":          t.hosts[0],
		"trafficPolicy": map[string]any{"portLevelSettings": settings},
	}))
	gw.Warnf(&r.ds, t.svc.Origin, "", "istio: %s rendered as ServiceEntry %s/%s through the Causeway gateway at %v; %s", t.svc.Key, t.ns, t.name, t.addrs, crossMeshCaveat)
}
