package pipeline

import (
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// decideProtocols settles the ports the kube translator left undecided
// (nothing in the Service says what they speak: no appProtocol, no
// "http-"/"grpc-"/"tcp-" name, not UDP). When SMI objects treat the service
// as HTTP, its undecided ports are http; otherwise tcp. Two things count as
// treating it as HTTP: a TrafficSplit with HTTPRouteGroup matches whose root
// or backend it is, and a TrafficTarget with an HTTPRouteGroup rule whose
// destination is one of its identities. Without this, the osm-demo
// bookstore (port "bookstore-port", HTTP routes in its TrafficTargets) would
// be opaque TCP and its HTTP rules would allow nothing; OSM itself treats
// such ports as HTTP, and Linkerd and Istio detect HTTP on them.
func decideProtocols(in *spec.Input) {
	httpSvc := map[spec.Key]bool{}
	httpID := map[spiffeid.ID]bool{}
	for _, sp := range in.Splits {
		for _, m := range sp.Matches {
			if m.Kind == spec.RouteHTTP {
				httpSvc[sp.Root] = true
				for _, b := range sp.Backends {
					httpSvc[b.Service] = true
				}
			}
		}
	}
	for _, p := range in.Policies {
		for _, r := range p.Rules {
			if r.Route.Kind == spec.RouteHTTP {
				httpID[p.Destination] = true
			}
		}
	}
	for i := range in.Services {
		svc := &in.Services[i]
		http := httpSvc[svc.Key]
		for _, id := range svc.Identities {
			http = http || httpID[id]
		}
		for j := range svc.Ports {
			p := &svc.Ports[j]
			switch {
			case p.Protocol != "":
			case http:
				p.Protocol = spec.ProtocolHTTP
			default:
				p.Protocol = spec.ProtocolTCP
			}
		}
	}
}
