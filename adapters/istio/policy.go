package istio

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	gw "github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/spec"
)

// Principal is how Istio names a SPIFFE identity in principals: the ID
// without its scheme, <td>/ns/<ns>/sa/<sa>.
func Principal(id spiffeid.ID) string {
	return strings.TrimPrefix(id.String(), "spiffe://")
}

// policies renders each TrafficTarget as an ALLOW AuthorizationPolicy in
// the destination's namespace, and in strict mode a deny-all per namespace
// so that workloads no TrafficTarget names refuse callers too (SMI's deny
// by default; Istio allows everything until an ALLOW policy selects a
// workload).
func (r *renderer) policies() {
	if r.s.Mode == spec.ModePermissive {
		for _, p := range r.s.Policies {
			gw.Warnf(&r.ds, p.Origin, "", "istio: not rendered: the mesh is permissive (every caller allowed), and an Istio ALLOW policy would deny the callers it does not name")
		}
		return
	}
	namespaces := gw.LocalNamespaces(r.s)
	for _, p := range r.s.Policies {
		if ns := r.policy(p); ns != "" {
			namespaces[ns] = true
		}
	}
	for ns := range namespaces {
		// An empty spec is an ALLOW policy with no rules: it selects every
		// workload of the namespace and allows nothing.
		r.add(gw.NewObject("security.istio.io/v1", "AuthorizationPolicy", ns, DenyAllName, map[string]any{}))
	}
}

// policy renders one TrafficTarget and returns the namespace it went to.
func (r *renderer) policy(p spec.AccessPolicy) string {
	ns, sa, ok := gw.ServiceAccountOf(p.Destination)
	if !ok {
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "istio: not rendered: destination %s is not a service account identity (spiffe://<td>/ns/<ns>/sa/<sa>)", p.Destination)
		return ""
	}
	r.scopeWarning(p, ns, sa)
	var principals []any
	for _, id := range p.Sources {
		principals = append(principals, Principal(id))
	}
	from := []any{map[string]any{"source": map[string]any{"principals": principals}}}
	dest, assumed := gw.ServicesOf(r.s, p.Destination)
	if assumed {
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "istio: no Service among the inputs is known to be served by %s; ports are mapped to workload ports as if %s were", p.Destination, gw.ServiceNames(dest))
	}
	var rules []any
	for i, rule := range p.Rules {
		field := fmt.Sprintf("spec.rules[%d]", i)
		route := gw.Lookup(r.s, rule.Route.Kind, rule.Route.Key)
		if route == nil {
			continue
		}
		switch rule.Route.Kind {
		case spec.RouteHTTP:
			rules = append(rules, r.httpRules(p, field, route, rule, dest, from)...)
		case spec.RouteTCP:
			ports, ok := spec.IntersectPorts(route.Ports, rule.Ports)
			if !ok {
				continue
			}
			one := map[string]any{"from": from}
			// A TCPRoute rule opens its ports to any traffic, HTTP included
			// (spec.Table.Authorize); no ports means every port.
			if len(ports) > 0 {
				one["to"] = []any{map[string]any{"operation": map[string]any{"ports": targetPorts(ports, dest)}}}
			}
			rules = append(rules, one)
		case spec.RouteUDP:
			gw.Warnf(&r.ds, p.Origin, field, "istio: rule not rendered: Istio proxies no UDP, so UDPRoute %s cannot be authorized", rule.Route.Key)
		}
	}
	if len(rules) == 0 {
		gw.Warnf(&r.ds, p.Origin, "spec.rules", "istio: no rule could be rendered; the deny-all of namespace %s refuses these sources", ns)
		return ns
	}
	r.add(gw.NewObject("security.istio.io/v1", "AuthorizationPolicy", ns, p.Key.Name, map[string]any{
		"action": "ALLOW",
		"rules":  rules,
	}))
	return ns
}

// scopeWarning says when the namespace-wide policy allows more than the
// TrafficTarget: Istio selects workloads by pod labels, never by service
// account, and the model keeps no labels, so the policy selects the whole
// namespace.
func (r *renderer) scopeWarning(p spec.AccessPolicy, ns, sa string) {
	if others := gw.Neighbours(r.s, p.Destination); len(others) > 0 {
		gw.Warnf(&r.ds, p.Origin, "spec.destination", "istio: AuthorizationPolicy selects every workload of namespace %s, not only service account %s (Istio selects by pod labels, which the SMI model lacks): its sources also reach service account(s) %s; add spec.selector.matchLabels to narrow it", ns, sa, strings.Join(others, ", "))
	}
}

// httpRules renders one HTTPRouteGroup rule. Matches without headers share
// one Istio rule (its `to` operations are ORed); a match with headers needs
// its own rule, since `when` conditions belong to the rule.
func (r *renderer) httpRules(p spec.AccessPolicy, field string, route *spec.Route, rule spec.AccessRule, dest []*spec.Service, from []any) []any {
	var ports []any
	if len(rule.Ports) > 0 {
		ports = targetPorts(rule.Ports, dest)
	}
	var plain []any
	var out []any
	for _, m := range gw.SelectMatches(route, rule.Route.Matches) {
		mfield := fmt.Sprintf("spec.matches[%d]", gw.MatchIndex(route, m.Name))
		op := map[string]any{}
		paths, ok := gw.PathForms(m.PathRegex)
		if !ok {
			gw.Warnf(&r.ds, route.Origin, mfield+".pathRegex", "istio: match %q not allowed to %s's sources (TrafficTarget %s): AuthorizationPolicy paths are exact, prefix (/p*) or suffix (*s) strings, and %q is a regex none of them expresses; Istio denies these requests", m.Name, p.Destination, p.Key, m.PathRegex)
			continue
		}
		if !(len(paths) == 1 && paths[0] == (gw.Form{})) {
			var ps []any
			for _, f := range paths {
				if f.Exact {
					ps = append(ps, f.Value)
				} else {
					ps = append(ps, f.Value+"*")
				}
			}
			op["paths"] = ps
		}
		if ms := gw.Methods(m); len(ms) > 0 {
			op["methods"] = toAny(ms)
		}
		if ports != nil {
			op["ports"] = ports
		}
		when, ok := r.when(p, route, mfield, m)
		if !ok {
			continue
		}
		to := map[string]any{"operation": op}
		if len(when) == 0 {
			plain = append(plain, to)
			continue
		}
		out = append(out, map[string]any{"from": from, "to": []any{to}, "when": when})
	}
	if len(plain) > 0 {
		out = append([]any{map[string]any{"from": from, "to": plain}}, out...)
	}
	return out
}

// when renders a match's header regexes as conditions; Istio compares
// header values as exact, prefix ("v*"), suffix ("*v") or presence strings.
func (r *renderer) when(p spec.AccessPolicy, route *spec.Route, field string, m spec.Match) ([]any, bool) {
	var out []any
	for _, h := range gw.SortedHeaders(m) {
		re := m.Headers[h]
		forms, ok := gw.HeaderForms(re)
		if ok && len(forms) == 1 && forms[0] == (gw.Form{}) {
			continue // ".*": any value, or none
		}
		if ok && slices.ContainsFunc(forms, func(f gw.Form) bool { return f.Value == "" }) {
			ok = false // "" exactly, or absent: Istio cannot say "missing"
		}
		if !ok {
			gw.Warnf(&r.ds, route.Origin, field+".headers."+h, "istio: match %q not allowed to %s's sources (TrafficTarget %s): conditions on request headers are exact, prefix, suffix or presence strings, and %q is a regex none of them expresses; Istio denies these requests", m.Name, p.Destination, p.Key, re)
			return nil, false
		}
		var values []any
		for _, f := range forms {
			switch {
			case f.Exact:
				values = append(values, f.Value)
			case f.Suffix:
				values = append(values, "*"+f.Value)
			default:
				values = append(values, f.Value+"*")
			}
		}
		out = append(out, map[string]any{"key": "request.headers[" + strings.ToLower(h) + "]", "values": values})
	}
	return out, true
}

// targetPorts maps service ports to the ports the destination's workloads
// listen on, which is what Istio's operation ports compare against.
func targetPorts(ports []int32, dest []*spec.Service) []any {
	var out []string
	for _, n := range ports {
		found := false
		for _, svc := range dest {
			if sp, ok := svc.Port(n); ok {
				out = append(out, strconv.Itoa(int(gw.TargetPort(sp))))
				found = true
			}
		}
		if !found {
			out = append(out, strconv.Itoa(int(n)))
		}
	}
	slices.Sort(out)
	return toAny(slices.Compact(out))
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
