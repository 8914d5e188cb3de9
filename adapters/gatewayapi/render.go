package gatewayapi

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/spec"
)

// Version is the Gateway API release whose CRDs the output is checked
// against (standard channel HTTPRoute v1; experimental TCPRoute and
// UDPRoute v1alpha2).
const Version = "v1.3.0"

// Gateway API limits (HTTPRoute CRD validation of Version).
const (
	maxRules        = 16
	maxMatches      = 64
	maxTotalMatches = 128
)

// Options tune the rendering.
type Options struct {
	// Standard limits the output to the standard channel: TCP and UDP
	// splits become diagnostics instead of TCPRoute/UDPRoute.
	Standard bool
}

// Render turns a snapshot into GAMMA resources: one HTTPRoute per split
// root service and HTTP port, one TCPRoute/UDPRoute per split L4 port. What
// Gateway API cannot say (access policy, exports) is diagnosed.
func Render(s *spec.Snapshot, o Options) ([]*unstructured.Unstructured, spec.Diagnostics) {
	var ds spec.Diagnostics
	objs := RenderSplits(s, o, &ds)
	for _, p := range s.Policies {
		Warnf(&ds, p.Origin, "", "gateway-api: not rendered: Gateway API (GAMMA) has no standard access policy resource; use --to istio or --to linkerd to carry TrafficTargets")
	}
	for i := range s.Services {
		if svc := &s.Services[i]; svc.Export && svc.Key.Cluster == "" {
			Warnf(&ds, svc.Origin, "", "gateway-api: export not rendered: Gateway API has no cross-cluster service import; use --to istio for a ServiceEntry through the Causeway gateway")
		}
	}
	SortObjects(objs)
	ds.Sort()
	ds = slices.Compact(ds) // one warning per cause, not per port
	return objs, ds
}

// RenderSplits renders the splits only (Linkerd reads the same
// gateway.networking.k8s.io routes).
func RenderSplits(s *spec.Snapshot, o Options, ds *spec.Diagnostics) []*unstructured.Unstructured {
	var objs []*unstructured.Unstructured
	for _, p := range Plans(s) {
		objs = append(objs, httpRoutes(&p, ds)...)
		objs = append(objs, l4Routes(&p, o, ds)...)
	}
	return objs
}

func httpRoutes(p *Plan, ds *spec.Diagnostics) []*unstructured.Unstructured {
	if len(p.HTTP) == 0 && p.Default == nil {
		return nil
	}
	ports := PortsOf(p.Root, spec.Protocol.IsHTTP)
	var out []*unstructured.Unstructured
	for _, port := range ports {
		var rules []any
		total := 0
		for _, ms := range p.HTTP {
			var matches []any
			for _, m := range ms.Matches {
				matches = append(matches, HTTPRouteMatches(m, ms.Route, ds)...)
			}
			if len(matches) == 0 {
				Warnf(ds, ms.Split.Origin, ms.Field, "gateway-api: no match of %s could be rendered; these requests go to the root service", ms.Route.Key)
				continue
			}
			total += len(matches)
			backends := backendRefs(ms.Split, p.Root.Key, port.Port, ds)
			// A rule takes at most 64 matches; more become further rules
			// with the same backends, which is the same OR.
			for chunk := range slices.Chunk(matches, maxMatches) {
				rules = append(rules, map[string]any{"matches": chunk, "backendRefs": backends})
			}
		}
		rules = append(rules, map[string]any{"backendRefs": backendRefs(p.Default, p.Root.Key, port.Port, ds)})
		origin := p.Root.Origin
		if len(p.HTTP) > 0 {
			origin = p.HTTP[0].Split.Origin
		} else if p.Default != nil {
			origin = p.Default.Origin
		}
		if len(rules) > maxRules || total > maxTotalMatches {
			Errorf(ds, origin, "spec.matches", "gateway-api: service %s needs %d rules and %d matches on port %d; an HTTPRoute holds at most %d rules and %d matches", p.Root.Key, len(rules), total, port.Port, maxRules, maxTotalMatches)
			continue
		}
		if len(p.HTTP) > 1 && distinctSplits(p.HTTP) {
			Warnf(ds, p.HTTP[1].Split.Origin, "spec.matches", "gateway-api: several TrafficSplits with matches share root %s; Gateway API orders overlapping matches by specificity, not by TrafficSplit name as Causeway does", p.Root.Key)
		}
		name := p.Root.Key.Name
		if len(ports) > 1 {
			name += "-" + strconv.Itoa(int(port.Port))
		}
		out = append(out, NewObject("gateway.networking.k8s.io/v1", "HTTPRoute", p.Root.Key.Namespace, name, map[string]any{
			"parentRefs": []any{serviceParent(p.Root.Key.Name, port.Port)},
			"rules":      rules,
		}))
	}
	return out
}

func distinctSplits(ms []MatchedSplit) bool {
	for _, m := range ms[1:] {
		if m.Split != ms[0].Split {
			return true
		}
	}
	return false
}

func serviceParent(name string, port int32) map[string]any {
	return map[string]any{"group": "", "kind": "Service", "name": name, "port": int64(port)}
}

func l4Routes(p *Plan, o Options, ds *spec.Diagnostics) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, port := range p.Root.Ports {
		sp, ok := p.L4[port.Port]
		if !ok {
			continue
		}
		kind := "TCPRoute"
		if port.Protocol == spec.ProtocolUDP {
			kind = "UDPRoute"
		}
		if o.Standard {
			Warnf(ds, sp.Origin, "spec.backends", "gateway-api: %s port %d not split: %s is in Gateway API's experimental channel only, and --gateway-api-channel is standard", p.Root.Key, port.Port, kind)
			continue
		}
		out = append(out, NewObject("gateway.networking.k8s.io/v1alpha2", kind, p.Root.Key.Namespace, p.Root.Key.Name+"-"+strconv.Itoa(int(port.Port)), map[string]any{
			"parentRefs": []any{serviceParent(p.Root.Key.Name, port.Port)},
			"rules":      []any{map[string]any{"backendRefs": backendRefs(sp, p.Root.Key, port.Port, ds)}},
		}))
	}
	return out
}

// backendRefs renders a split's backends (nil: the root) at one port. SMI
// backends live in the root's namespace and have every root port (spec.Build
// drops those that lack one), so the same port number is right.
func backendRefs(sp *spec.Split, root spec.Key, port int32, ds *spec.Diagnostics) []any {
	bs := Backends(sp, root)
	ws := make([]int64, len(bs))
	for i, b := range bs {
		ws[i] = b.Weight
	}
	rel, exact := RelativeWeights(ws, MaxWeight)
	if !exact && sp != nil {
		Warnf(ds, sp.Origin, "spec.backends", "gateway-api: weights rounded: their exact ratios need integers above %d, the largest backendRef weight", MaxWeight)
	}
	out := make([]any, len(bs))
	for i, b := range bs {
		ref := map[string]any{"group": "", "kind": "Service", "name": b.Service.Name, "port": int64(port), "weight": rel[i]}
		if b.Service.Namespace != root.Namespace {
			ref["namespace"] = b.Service.Namespace
		}
		out[i] = ref
	}
	return out
}

// headerName is Gateway API's HTTPHeaderName pattern (an RFC 7230 token).
var headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+\\-.^_`|~]+$")

// gatewayMethods are the methods an HTTPRouteMatch may name.
var gatewayMethods = []string{"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}

// HTTPRouteMatches renders one SMI match as Gateway API HTTPRouteMatches:
// one per method (an HTTPRouteMatch names at most one), each with the path
// and every header (ANDed, as SMI's are). A match that cannot be rendered
// whole is left out with a diagnostic: rendering part of it would match
// more than SMI does.
func HTTPRouteMatches(m spec.Match, r *spec.Route, ds *spec.Diagnostics) []any {
	field := fmt.Sprintf("spec.matches[%d]", MatchIndex(r, m.Name))
	base := map[string]any{}
	if pm := PathMatch(m.PathRegex); pm != nil {
		base["path"] = pm
	}
	if hs := SortedHeaders(m); len(hs) > 0 {
		var headers []any
		for _, h := range hs {
			if !headerName.MatchString(h) {
				Warnf(ds, r.Origin, field+".headers."+h, "gateway-api: match %q left out: %q is not a header name Gateway API accepts (RFC 7230 token)", m.Name, h)
				return nil
			}
			// ".*" also matches a missing header: no condition at all.
			if forms, ok := HeaderForms(m.Headers[h]); ok && len(forms) == 1 && forms[0] == (Form{}) {
				continue
			}
			headers = append(headers, HeaderMatch(h, m.Headers[h]))
		}
		if len(headers) > 0 {
			base["headers"] = headers
		}
	}
	methods := Methods(m)
	if len(methods) == 0 {
		return []any{base}
	}
	var out []any
	for _, meth := range methods {
		if !slices.Contains(gatewayMethods, meth) {
			Warnf(ds, r.Origin, field+".methods", "gateway-api: match %q left out: method %q is not one Gateway API can match (want one of %v)", m.Name, meth, gatewayMethods)
			return nil
		}
		one := map[string]any{"method": meth}
		for k, v := range base {
			one[k] = v
		}
		out = append(out, one)
	}
	return out
}

// PathMatch renders an SMI pathRegex (anchored at the start only) as an
// HTTPPathMatch, or nil when it matches every path. Gateway API's
// PathPrefix matches whole path segments ("/books" does not match
// "/books-bought"), so prefixes stay regexes; "^" and a trailing ".*"
// make the regex mean the same whether the implementation matches the
// whole path (Envoy, Linkerd) or searches in it.
func PathMatch(re string) map[string]any {
	if forms, ok := PathForms(re); ok && len(forms) == 1 {
		f := forms[0]
		switch {
		case f.Value == "" && !f.Exact:
			return nil
		case f.Exact && exactPathOK(f.Value):
			return map[string]any{"type": "Exact", "value": f.Value}
		case !f.Exact:
			return map[string]any{"type": "RegularExpression", "value": "^" + regexp.QuoteMeta(f.Value) + ".*"}
		}
	}
	a, _ := spec.AnchorRegex(re, false) // re passed spec.Build
	return map[string]any{"type": "RegularExpression", "value": a + ".*"}
}

// exactPathOK reports whether Gateway API takes p as an Exact path: it
// must be absolute and free of what its CRD refuses in one (empty or dot
// segments, encoded slashes, fragments); anything else stays a regex.
func exactPathOK(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for _, bad := range []string{"//", "/./", "/../", "%2f", "%2F", "#"} {
		if strings.Contains(p, bad) {
			return false
		}
	}
	return !strings.HasSuffix(p, "/..") && !strings.HasSuffix(p, "/.")
}

// HeaderMatch renders one SMI header condition (a regex the whole value
// must match) as an HTTPHeaderMatch.
func HeaderMatch(name, re string) map[string]any {
	if lit, ok := IsLiteral(re); ok && lit != "" {
		return map[string]any{"type": "Exact", "name": name, "value": lit}
	}
	a, _ := spec.AnchorRegex(re, true) // re passed spec.Build
	return map[string]any{"type": "RegularExpression", "name": name, "value": a}
}
