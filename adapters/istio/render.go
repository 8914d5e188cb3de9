package istio

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gw "github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/spec"
)

// Version is the Istio release whose CRDs (istio.io/api) the output is
// checked against; networking.istio.io/v1 and security.istio.io/v1 are
// served from Istio 1.22 on.
const Version = "v1.27.3"

// DenyAllName names the per-namespace AuthorizationPolicy that makes
// strict mode's deny-by-default explicit.
const DenyAllName = "causeway-deny-all"

// Options tune the rendering.
type Options struct {
	// ClusterDomain is the Kubernetes DNS domain; "" means cluster.local.
	ClusterDomain string
	// Cluster names this cluster in the host names other meshes use for its
	// exported services (name.ns.svc.<cluster>); "" means the snapshot's
	// trust domain.
	Cluster string
	// GatewayAddrs (host:port) of this cluster's Causeway east-west gateway;
	// without them local exports cannot be rendered.
	GatewayAddrs []string
	// GatewayIdentity is the gateway's SPIFFE ID; zero means
	// spiffe://<trust domain>/ns/causeway-system/sa/causeway-gateway.
	GatewayIdentity spiffeid.ID
}

// Render turns a snapshot into Istio resources: VirtualServices for splits,
// AuthorizationPolicies for TrafficTargets (plus a deny-all per namespace
// in strict mode), ServiceEntries and DestinationRules for services reached
// through a Causeway gateway. What Istio cannot express is diagnosed.
func Render(s *spec.Snapshot, o Options) ([]*unstructured.Unstructured, spec.Diagnostics) {
	r := &renderer{s: s, o: o}
	for _, p := range gw.Plans(s) {
		r.virtualService(&p)
	}
	r.policies()
	r.exports()
	gw.SortObjects(r.objs)
	r.ds.Sort()
	r.ds = slices.Compact(r.ds) // one warning per cause, not per port
	return r.objs, r.ds
}

type renderer struct {
	s    *spec.Snapshot
	o    Options
	objs []*unstructured.Unstructured
	ds   spec.Diagnostics
}

func (r *renderer) add(o *unstructured.Unstructured) { r.objs = append(r.objs, o) }

// virtualService renders one root's splits. Istio tries http routes in
// order, as Causeway's proxy does, so the SMI semantics carry over exactly:
// matched splits first, then the default, else the root.
func (r *renderer) virtualService(p *gw.Plan) {
	root := p.Root
	host := gw.FQDN(root.Key, r.o.ClusterDomain)
	vs := map[string]any{"hosts": []any{host}}
	if len(gw.PortsOf(root, spec.Protocol.IsHTTP)) > 0 && (len(p.HTTP) > 0 || p.Default != nil) {
		var routes []any
		for _, ms := range p.HTTP {
			var matches []any
			for _, m := range ms.Matches {
				matches = append(matches, httpMatch(m))
			}
			if len(matches) == 0 {
				continue
			}
			routes = append(routes, map[string]any{
				"name":  ms.Split.Key.Name + "." + ms.Route.Key.Name,
				"match": matches,
				"route": r.destinations(ms.Split, root.Key),
			})
		}
		name := root.Key.Name
		if p.Default != nil {
			name = p.Default.Key.Name
		}
		routes = append(routes, map[string]any{"name": name, "route": r.destinations(p.Default, root.Key)})
		vs["http"] = routes
	}
	var tcp []any
	for _, port := range root.Ports {
		sp, ok := p.L4[port.Port]
		if !ok {
			continue
		}
		if port.Protocol == spec.ProtocolUDP {
			gw.Warnf(&r.ds, sp.Origin, "spec.backends", "istio: %s port %d (udp) not split: Istio proxies no UDP", root.Key, port.Port)
			continue
		}
		tcp = append(tcp, map[string]any{
			"match": []any{map[string]any{"port": int64(port.Port)}},
			"route": r.destinations(sp, root.Key),
		})
	}
	if len(tcp) > 0 {
		vs["tcp"] = tcp
	}
	if vs["http"] == nil && vs["tcp"] == nil {
		return
	}
	r.add(gw.NewObject("networking.istio.io/v1", "VirtualService", root.Key.Namespace, root.Key.Name, vs))
}

// destinations renders backends as percentages summing to 100, the form
// Istio's weights take; thousandths that are not whole percentages round.
func (r *renderer) destinations(sp *spec.Split, root spec.Key) []any {
	bs := gw.Backends(sp, root)
	ws := make([]int64, len(bs))
	for i, b := range bs {
		ws[i] = b.Weight
	}
	pct, exact := gw.Percentages(ws)
	if !exact && sp != nil {
		var got []string
		for i, b := range bs {
			got = append(got, fmt.Sprintf("%s=%s->%d%%", b.Service.Name, spec.FormatWeight(b.Weight), pct[i]))
		}
		gw.Warnf(&r.ds, sp.Origin, "spec.backends", "istio: weights rounded to whole percentages (%s): Istio route weights are integers out of 100", strings.Join(got, ", "))
	}
	out := make([]any, len(bs))
	for i, b := range bs {
		out[i] = map[string]any{"destination": map[string]any{"host": gw.FQDN(b.Service, r.o.ClusterDomain)}, "weight": pct[i]}
	}
	return out
}

// httpMatch renders one SMI match as an HTTPMatchRequest. Istio's regexes
// are RE2 matched against the whole value (Envoy's safe_regex), so an SMI
// pathRegex, anchored at the start only, gets a trailing ".*".
func httpMatch(m spec.Match) map[string]any {
	out := map[string]any{"name": m.Name}
	if u := uriMatch(m.PathRegex); u != nil {
		out["uri"] = u
	}
	if ms := gw.Methods(m); len(ms) == 1 {
		out["method"] = map[string]any{"exact": ms[0]}
	} else if len(ms) > 1 {
		quoted := make([]string, len(ms))
		for i, x := range ms {
			quoted[i] = regexp.QuoteMeta(x)
		}
		out["method"] = map[string]any{"regex": strings.Join(quoted, "|")}
	}
	headers := map[string]any{}
	for _, h := range gw.SortedHeaders(m) {
		if hm := headerMatch(m.Headers[h]); hm != nil {
			// Istio wants header names in lower case; HTTP names are
			// case-insensitive, so nothing is lost.
			headers[strings.ToLower(h)] = hm
		}
	}
	if len(headers) > 0 {
		out["headers"] = headers
	}
	return out
}

func uriMatch(re string) map[string]any {
	if forms, ok := gw.PathForms(re); ok && len(forms) == 1 {
		f := forms[0]
		switch {
		case f.Value == "" && !f.Exact:
			return nil
		case f.Exact:
			return map[string]any{"exact": f.Value}
		default:
			return map[string]any{"prefix": f.Value}
		}
	}
	a, _ := spec.AnchorRegex(re, false) // re passed spec.Build
	return map[string]any{"regex": a + ".*"}
}

func headerMatch(re string) map[string]any {
	if forms, ok := gw.HeaderForms(re); ok && len(forms) == 1 {
		f := forms[0]
		switch {
		case f.Value == "" && !f.Exact && !f.Suffix:
			return nil // ".*": any value, or none
		case f.Exact && f.Value != "":
			return map[string]any{"exact": f.Value}
		case !f.Exact && !f.Suffix:
			return map[string]any{"prefix": f.Value}
		}
	}
	return map[string]any{"regex": re}
}
