package linkerd

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	gw "github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/spec"
)

// Version is the Linkerd release the output targets: Server
// policy.linkerd.io/v1beta3, AuthorizationPolicy and MeshTLSAuthentication
// v1alpha1, routes from gateway.networking.k8s.io (HTTPRoute v1 for
// outbound and inbound, TCPRoute v1alpha2 for outbound, Linkerd >= 2.16).
const Version = "2.18"

// DefaultInboundPolicy is the annotation that sets a namespace's default
// inbound policy; strict mode sets it to "deny".
const DefaultInboundPolicy = "config.linkerd.io/default-inbound-policy"

// Options tune the rendering.
type Options struct {
	// ControlPlaneNamespace is Linkerd's namespace, part of every identity
	// name; "" means "linkerd".
	ControlPlaneNamespace string
}

// Identity is the name Linkerd gives a service account's workloads:
// <sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>.
func Identity(id spiffeid.ID, controlPlaneNS string) (string, bool) {
	ns, sa, ok := gw.ServiceAccountOf(id)
	if !ok {
		return "", false
	}
	return sa + "." + ns + ".serviceaccount.identity." + cmp.Or(controlPlaneNS, "linkerd") + "." + id.TrustDomain().Name(), true
}

// Render turns a snapshot into Linkerd resources: Gateway API routes for
// splits; Server, MeshTLSAuthentication, HTTPRoute and AuthorizationPolicy
// for TrafficTargets; a deny default on namespaces in strict mode.
func Render(s *spec.Snapshot, o Options) ([]*unstructured.Unstructured, spec.Diagnostics) {
	r := &renderer{s: s, o: o, servers: map[string]*unstructured.Unstructured{}}
	r.splits()
	r.policies()
	for i := range s.Services {
		if svc := &s.Services[i]; svc.Export || svc.Key.Cluster != "" {
			gw.Warnf(&r.ds, svc.Origin, "", "linkerd: %s not rendered across meshes: Linkerd reaches other clusters through its own multicluster gateway and Link, and has no resource that points a service at a foreign gateway with mTLS; use --to istio", svc.Key)
		}
	}
	for _, srv := range r.servers {
		r.objs = append(r.objs, srv)
	}
	gw.SortObjects(r.objs)
	r.ds.Sort()
	r.ds = slices.Compact(r.ds) // one warning per cause, not per port
	return r.objs, r.ds
}

type renderer struct {
	s       *spec.Snapshot
	o       Options
	objs    []*unstructured.Unstructured
	ds      spec.Diagnostics
	servers map[string]*unstructured.Unstructured // by namespace/name
}

func (r *renderer) splits() {
	for _, p := range gw.Plans(r.s) {
		for _, port := range p.Root.Ports {
			if sp, ok := p.L4[port.Port]; ok && port.Protocol == spec.ProtocolUDP {
				gw.Warnf(&r.ds, sp.Origin, "spec.backends", "linkerd: %s port %d (udp) not split: Linkerd proxies no UDP", p.Root.Key, port.Port)
			}
		}
	}
	for _, o := range gw.RenderSplits(r.s, gw.Options{}, &r.ds) {
		if o.GetKind() == "UDPRoute" {
			continue
		}
		r.objs = append(r.objs, o)
	}
	// The Gateway API diagnostics speak for Linkerd here too.
	for i := range r.ds {
		r.ds[i].Message = strings.Replace(r.ds[i].Message, "gateway-api: ", "linkerd: ", 1)
	}
}

// server returns the Server of a workload port in a namespace, creating it
// once. Linkerd forbids two Servers on one pod port, so policies share it.
func (r *renderer) server(ns string, port spec.Port) string {
	target := gw.TargetPort(port)
	name := "causeway-" + strconv.Itoa(int(target))
	key := ns + "/" + name
	if _, ok := r.servers[key]; !ok {
		r.servers[key] = gw.NewObject("policy.linkerd.io/v1beta3", "Server", ns, name, map[string]any{
			// Servers select pods by labels, which the model does not keep:
			// every pod of the namespace listening on the port.
			"podSelector":   map[string]any{},
			"port":          int64(target),
			"proxyProtocol": proxyProtocol(port.Protocol),
		})
	}
	return name
}

func proxyProtocol(p spec.Protocol) string {
	switch p {
	case spec.ProtocolHTTP:
		return "HTTP/1"
	case spec.ProtocolHTTP2:
		return "HTTP/2"
	case spec.ProtocolGRPC:
		return "gRPC"
	case spec.ProtocolTCP:
		return "opaque"
	}
	return "unknown"
}

func (r *renderer) policies() {
	if r.s.Mode == spec.ModePermissive {
		for _, p := range r.s.Policies {
			gw.Warnf(&r.ds, p.Origin, "", "linkerd: not rendered: the mesh is permissive (every caller allowed), and a Linkerd Server denies the callers no policy names")
		}
		return
	}
	namespaces := gw.LocalNamespaces(r.s)
	for _, p := range r.s.Policies {
		r.policy(p)
		if ns, _, ok := gw.ServiceAccountOf(p.Destination); ok {
			namespaces[ns] = true
		}
	}
	for ns := range namespaces {
		o := gw.NewObject("v1", "Namespace", "", ns, nil)
		o.SetAnnotations(map[string]string{DefaultInboundPolicy: "deny"})
		r.objs = append(r.objs, o)
	}
}

func (r *renderer) policy(p spec.AccessPolicy) {
	ns, sa, ok := gw.ServiceAccountOf(p.Destination)
	if !ok {
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "linkerd: not rendered: destination %s is not a service account identity (spiffe://<td>/ns/<ns>/sa/<sa>)", p.Destination)
		return
	}
	dest, assumed := gw.ServicesOf(r.s, p.Destination)
	if assumed {
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "linkerd: no Service among the inputs is known to be served by %s; its Servers take the ports of %s, the services of its namespace whose workloads are unknown", p.Destination, gw.ServiceNames(dest))
	}
	if len(dest) == 0 {
		// Without a Service only the ports the rules name are known; they
		// are taken as the workload's own ports.
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "linkerd: no Service among the inputs is served by service account %s/%s: Servers are made only for ports the rules name (TCPRoute ports, rule ports), taken as the workload's ports", ns, sa)
	}
	var identities []any
	for i, id := range p.Sources {
		name, ok := Identity(id, r.o.ControlPlaneNamespace)
		if !ok {
			gw.Warnf(&r.ds, p.Origin, fmt.Sprintf("spec.sources[%d]", i), "linkerd: source %s is not a service account identity; kept as a SPIFFE ID, which Linkerd matches only for workloads with SPIFFE identities (mesh expansion)", id)
			name = id.String()
		}
		identities = append(identities, name)
	}
	authn := p.Key.Name
	r.objs = append(r.objs, gw.NewObject("policy.linkerd.io/v1alpha1", "MeshTLSAuthentication", ns, authn, map[string]any{"identities": identities}))
	authnRef := []any{map[string]any{"group": "policy.linkerd.io", "kind": "MeshTLSAuthentication", "name": authn}}
	rendered := 0
	for i, rule := range p.Rules {
		field := fmt.Sprintf("spec.rules[%d]", i)
		route := gw.Lookup(r.s, rule.Route.Kind, rule.Route.Key)
		if route == nil {
			continue
		}
		switch rule.Route.Kind {
		case spec.RouteHTTP:
			ports := destPorts(dest, rule.Ports, spec.Protocol.IsHTTP)
			if len(dest) == 0 {
				ports = bare(rule.Ports, spec.ProtocolHTTP)
			}
			var parents []any
			for _, port := range ports {
				parents = append(parents, map[string]any{"group": "policy.linkerd.io", "kind": "Server", "name": r.server(ns, port)})
			}
			matches := r.matches(p, route, rule)
			if len(parents) == 0 || len(matches) == 0 {
				gw.Warnf(&r.ds, p.Origin, field, "linkerd: rule not rendered: no HTTP port of %s's services, or no match of %s Linkerd can express", p.Destination, route.Key)
				continue
			}
			var rules []any
			for chunk := range slices.Chunk(matches, 64) {
				rules = append(rules, map[string]any{"matches": chunk})
			}
			name := p.Key.Name + "-" + strconv.Itoa(i)
			r.objs = append(r.objs, gw.NewObject("gateway.networking.k8s.io/v1", "HTTPRoute", ns, name, map[string]any{"parentRefs": parents, "rules": rules}))
			r.objs = append(r.objs, gw.NewObject("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", ns, name, map[string]any{
				"targetRef":                  map[string]any{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name},
				"requiredAuthenticationRefs": authnRef,
			}))
			rendered++
		case spec.RouteTCP:
			ports, ok := spec.IntersectPorts(route.Ports, rule.Ports)
			if !ok {
				continue
			}
			// A TCPRoute rule opens the port to any traffic (HTTP too).
			sports := destPorts(dest, ports, func(p spec.Protocol) bool { return p != spec.ProtocolUDP })
			if len(dest) == 0 {
				sports = bare(ports, spec.ProtocolTCP)
			}
			if len(sports) == 0 {
				gw.Warnf(&r.ds, p.Origin, field, "linkerd: rule not rendered: TCPRoute %s names no port and no Service of %s is known, so there is no Server to authorize", rule.Route.Key, p.Destination)
			}
			for _, port := range sports {
				srv := r.server(ns, port)
				name := p.Key.Name + "-" + strconv.Itoa(i) + "-" + strconv.Itoa(int(gw.TargetPort(port)))
				r.objs = append(r.objs, gw.NewObject("policy.linkerd.io/v1alpha1", "AuthorizationPolicy", ns, name, map[string]any{
					"targetRef":                  map[string]any{"group": "policy.linkerd.io", "kind": "Server", "name": srv},
					"requiredAuthenticationRefs": authnRef,
				}))
				rendered++
			}
		case spec.RouteUDP:
			gw.Warnf(&r.ds, p.Origin, field, "linkerd: rule not rendered: Linkerd proxies no UDP, so UDPRoute %s cannot be authorized", rule.Route.Key)
		}
	}
	if rendered == 0 {
		gw.Warnf(&r.ds, p.Origin, "spec.rules", "linkerd: no rule could be rendered; these sources are denied")
	}
	if others := gw.Neighbours(r.s, p.Destination); len(others) > 0 {
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "linkerd: Servers select every pod of namespace %s on their port, not only service account %s (Linkerd selects by pod labels, which the SMI model lacks): these sources also reach service account(s) %s there; set spec.podSelector to narrow them", ns, sa, strings.Join(others, ", "))
	}
}

// destPorts lists the destination services' ports among want (service
// port numbers; empty means all) that speak a protocol ok accepts, one per
// workload port.
func destPorts(dest []*spec.Service, want []int32, ok func(spec.Protocol) bool) []spec.Port {
	var out []spec.Port
	for _, svc := range dest {
		for _, p := range svc.Ports {
			if ok(p.Protocol) && (len(want) == 0 || slices.Contains(want, p.Port)) &&
				!slices.ContainsFunc(out, func(q spec.Port) bool { return gw.TargetPort(q) == gw.TargetPort(p) }) {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b spec.Port) int { return cmp.Compare(gw.TargetPort(a), gw.TargetPort(b)) })
	return out
}

// matches renders a rule's HTTP matches for an inbound HTTPRoute. Linkerd
// compiles regexes with Rust's regex crate, which lacks a few RE2 forms.
func (r *renderer) matches(p spec.AccessPolicy, route *spec.Route, rule spec.AccessRule) []any {
	var out []any
	for _, m := range gw.SelectMatches(route, rule.Route.Matches) {
		field := fmt.Sprintf("spec.matches[%d]", gw.MatchIndex(route, m.Name))
		if bad := rustIncompatible(m); bad != "" {
			gw.Warnf(&r.ds, route.Origin, field, "linkerd: match %q not allowed to %s's sources (TrafficTarget %s): %s; Linkerd denies these requests", m.Name, p.Destination, p.Key, bad)
			continue
		}
		out = append(out, gw.HTTPRouteMatches(m, route, &r.ds)...)
	}
	return out
}

// rustIncompatible names RE2 syntax the Rust regex crate rejects: quoted
// literals (\Q...\E) and the any-byte class \C.
func rustIncompatible(m spec.Match) string {
	check := func(what, re string) string {
		for _, bad := range []string{`\Q`, `\C`} {
			if strings.Contains(re, bad) {
				return fmt.Sprintf("%s %q uses %s, which Linkerd's regex engine (Rust regex) does not accept", what, re, bad)
			}
		}
		return ""
	}
	if s := check("pathRegex", m.PathRegex); s != "" {
		return s
	}
	for _, h := range gw.SortedHeaders(m) {
		if s := check("header "+h, m.Headers[h]); s != "" {
			return s
		}
	}
	return ""
}

// bare turns port numbers into ports of one protocol (workload port = port).
func bare(ports []int32, proto spec.Protocol) []spec.Port {
	out := make([]spec.Port, len(ports))
	for i, p := range ports {
		out[i] = spec.Port{Port: p, Protocol: proto}
	}
	return out
}
