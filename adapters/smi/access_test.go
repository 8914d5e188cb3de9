package smi

import (
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

func TestTrafficTarget(t *testing.T) {
	t.Parallel()
	id := func(td, ns, sa string) string { return "spiffe://" + td + "/ns/" + ns + "/sa/" + sa }
	http := func(ns, name string, matches ...string) spec.RouteRef {
		return spec.RouteRef{Kind: spec.RouteHTTP, Key: spec.Key{Namespace: ns, Name: name}, Matches: matches}
	}
	tcp := func(ns, name string) spec.RouteRef {
		return spec.RouteRef{Kind: spec.RouteTCP, Key: spec.Key{Namespace: ns, Name: name}}
	}
	type policy struct {
		dest    string
		sources []string
		rules   []spec.AccessRule
	}
	cases := []struct {
		name   string
		yaml   string
		opts   Options
		policy *policy // nil: no policy expected
		diags  []diag
	}{
		{
			name: "v1alpha1 top-level fields, specs, destination.port",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: t, namespace: shop}
destination: {kind: ServiceAccount, name: web, port: 8080}
specs:
- {kind: HTTPRouteGroup, name: routes, matches: [metrics]}
sources:
- {kind: ServiceAccount, name: prom, namespace: monitoring}`,
			policy: &policy{
				dest:    id("cluster.local", "shop", "web"),
				sources: []string{id("cluster.local", "monitoring", "prom")},
				rules:   []spec.AccessRule{{Route: http("shop", "routes", "metrics"), Ports: []int32{8080}}},
			},
		},
		{
			name: "v1alpha2 under spec, rules, destination.port, trust domain option",
			opts: Options{TrustDomain: "example.org"},
			yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop, port: 8080}
  rules:
  - {kind: HTTPRouteGroup, name: routes}
  - {kind: TCPRoute, name: raw}
  sources:
  - {kind: ServiceAccount, name: buyer}`,
			policy: &policy{
				dest:    id("example.org", "shop", "web"),
				sources: []string{id("example.org", "shop", "buyer")},
				rules:   []spec.AccessRule{{Route: http("shop", "routes"), Ports: []int32{8080}}, {Route: tcp("shop", "raw"), Ports: []int32{8080}}},
			},
		},
		{
			name: "v1alpha3: no port; a rule without matches is the whole route",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web}
  rules:
  - {kind: TCPRoute, name: the-routes}
  - {kind: HTTPRouteGroup, name: the-routes}
  - {kind: UDPRoute, name: dns}
  sources:
  - {kind: ServiceAccount, name: a}
  - {kind: ServiceAccount, name: b, namespace: other}`,
			policy: &policy{
				dest:    id("cluster.local", "shop", "web"),
				sources: []string{id("cluster.local", "shop", "a"), id("cluster.local", "other", "b")},
				rules: []spec.AccessRule{
					{Route: tcp("shop", "the-routes")},
					{Route: http("shop", "the-routes")},
					{Route: spec.RouteRef{Kind: spec.RouteUDP, Key: spec.Key{Namespace: "shop", Name: "dns"}}},
				},
			},
		},
		{
			name: "v1alpha3 leftover destination.port string: known slip, honoured with a warning",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop, port: "9091"}
  rules: [{kind: HTTPRouteGroup, name: rg, matches: [m]}]
  sources: [{kind: ServiceAccount, name: a}]`,
			policy: &policy{
				dest:    id("cluster.local", "shop", "web"),
				sources: []string{id("cluster.local", "shop", "a")},
				rules:   []spec.AccessRule{{Route: http("shop", "rg", "m"), Ports: []int32{9091}}},
			},
			diags: []diag{w("spec.destination.port", "port was removed in v1alpha3 (known slip)")},
		},
		{
			name: "v1alpha3 leftover destination.port that is no port",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, port: http}
  rules: [{kind: HTTPRouteGroup, name: rg}]`,
			diags: []diag{e("spec.destination.port", "must be a port number")},
		},
		{
			name: "v1alpha2 port out of range and of the wrong type",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, port: 0}
  rules: [{kind: HTTPRouteGroup, name: rg}]
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: u, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, port: "80"}
  rules: [{kind: HTTPRouteGroup, name: rg}]`,
			diags: []diag{
				e("spec.destination.port", "port 0 out of range"),
				e("spec.destination.port", `wrong type: got string "80", want integer`),
			},
		},
		{
			name: "rule kinds per version, names required",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web}
  rules:
  - {kind: UDPRoute, name: dns}
  - {kind: HTTPRoute, name: x}
  - {kind: TCPRoute}`,
			diags: []diag{
				e("spec.rules[0].kind", `kind "UDPRoute" cannot be a rule of TrafficTarget v1alpha2 (want one of: HTTPRouteGroup, TCPRoute)`),
				e("spec.rules[1].kind", `kind "HTTPRoute" cannot be a rule`),
				e("spec.rules[2].name", "required"),
			},
		},
		{
			name: "matches on a TCPRoute rule are ignored with a warning",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: db}
  rules: [{kind: TCPRoute, name: mysql, matches: [x]}]
  sources: [{kind: ServiceAccount, name: app}]`,
			policy: &policy{
				dest:    id("cluster.local", "shop", "db"),
				sources: []string{id("cluster.local", "shop", "app")},
				rules:   []spec.AccessRule{{Route: tcp("shop", "mysql")}},
			},
			diags: []diag{w("spec.rules[0].matches", "TCPRoute has no named matches; matches ignored")},
		},
		{
			name: "subjects must be service accounts with names",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: Pod, name: web}
  rules: [{kind: TCPRoute, name: r}]
  sources:
  - {kind: ServiceAccount}
  - {kind: IdentityBinding, name: b}
  - {kind: ServiceAccount, name: a, namespace: "Bad_NS"}`,
			diags: []diag{
				e("spec.destination.kind", `kind "Pod" cannot name an identity (want ServiceAccount)`),
				e("spec.sources[0].name", "required"),
				e("spec.sources[1].kind", `kind "IdentityBinding" cannot name an identity`),
				e("spec.sources[2].namespace", `namespace "Bad_NS": a lowercase RFC 1123 label`),
			},
		},
		{
			name: "v1alpha1 fields under spec are unknown",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web}`,
			diags: []diag{w("spec", `unknown field "spec"`), e("destination.name", "required")},
		},
		{
			name: "v1alpha4 draft: IdentityBindings, declared after the target",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: IdentityBinding, group: access.smi-spec.io, name: api}
  rules: [{kind: TCPRoute, name: port}, {kind: HTTPRouteGroup, name: routes, matches: [metrics]}]
  sources:
  - {kind: IdentityBinding, group: access.smi-spec.io, name: prom}
  - {kind: ServiceAccount, name: admin}
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: api, namespace: shop}
spec:
  schemes: {serviceAccount: api-sa}
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: prom, namespace: shop}
spec:
  schemes:
    spiffeIdentities: ["cluster.local/ns/monitoring/sa/prometheus", "spiffe://other.org/prom"]`,
			policy: &policy{
				dest:    id("cluster.local", "shop", "api-sa"),
				sources: []string{id("cluster.local", "monitoring", "prometheus"), "spiffe://other.org/prom", id("cluster.local", "shop", "admin")},
				rules:   []spec.AccessRule{{Route: tcp("shop", "port")}, {Route: http("shop", "routes", "metrics")}},
			},
		},
		{
			name: "v1alpha4 missing IdentityBinding is a warning",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  rules: [{kind: TCPRoute, name: port}]
  sources: [{kind: IdentityBinding, name: gone}]`,
			policy: &policy{dest: id("cluster.local", "shop", "api"), rules: []spec.AccessRule{{Route: tcp("shop", "port")}}},
			diags:  []diag{w("spec.sources[0]", "IdentityBinding shop/gone not found among the inputs")},
		},
		{
			name: "v1alpha4 missing IdentityBinding is an error with Strict",
			opts: Options{Strict: true},
			yaml: `
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  rules: [{kind: TCPRoute, name: port}]
  sources: [{kind: IdentityBinding, name: gone}]`,
			diags: []diag{e("spec.sources[0]", "IdentityBinding shop/gone not found among the inputs")},
		},
		{
			name: "v1alpha4 IdentityBinding problems",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: a, namespace: shop}
spec:
  schemes:
    podLabelSelector: {matchLabels: {app: a}}
    serviceAccount: a
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: b, namespace: shop}
spec:
  schemes:
    podLabelSelector: {matchLabels: {app: b}}
    spiffeIdentities: ["not a spiffe id"]
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: c, namespace: shop}
spec:
  schemes:
    podLabelSelector: {matchLabels: {app: c}}
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: d, namespace: shop}
spec:
  schemes: {serviceAccount: d, spiffeIdentities: [cluster.local/x]}
---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: IdentityBinding, name: d}
  rules: [{kind: TCPRoute, name: port}]`,
			diags: []diag{
				e("spec.schemes.podLabelSelector", "mutually exclusive"),
				w("spec.schemes.podLabelSelector", "not supported"),
				e("spec.schemes.spiffeIdentities[0]", `invalid SPIFFE ID "not a spiffe id"`),
				w("spec.schemes.podLabelSelector", "not supported"),
				w("spec.schemes", "no identity"),
				e("spec.destination", "stands for 2 identities"),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, ds := Translate(objects(t, tc.yaml), tc.opts)
			checkDiags(t, ds, tc.diags)
			if tc.policy == nil {
				if len(in.Policies) != 0 {
					t.Errorf("policy translated despite errors: %+v", in.Policies)
				}
				return
			}
			if len(in.Policies) != 1 {
				t.Fatalf("got %d policies, want 1", len(in.Policies))
			}
			p := in.Policies[0]
			if p.Key != (spec.Key{Namespace: "shop", Name: "t"}) {
				t.Errorf("key = %v", p.Key)
			}
			if p.Destination.String() != tc.policy.dest {
				t.Errorf("destination = %s, want %s", p.Destination, tc.policy.dest)
			}
			if got := ids(p.Sources); !reflect.DeepEqual(got, tc.policy.sources) && len(got)+len(tc.policy.sources) > 0 {
				t.Errorf("sources = %v, want %v", got, tc.policy.sources)
			}
			if !reflect.DeepEqual(p.Rules, tc.policy.rules) {
				t.Errorf("rules = %+v\nwant    %+v", p.Rules, tc.policy.rules)
			}
		})
	}
}

// TestTargetThroughBuild checks what Build adds: one warning (not two) for a
// target without sources or rules, missing routes by SMI path, deny by
// default meaning nothing is invented.
func TestTargetThroughBuild(t *testing.T) {
	t.Parallel()
	routes := "---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: rg, namespace: shop}\nspec:\n  matches: [{name: m, pathRegex: /m}]\n"
	cases := []struct {
		name   string
		yaml   string
		strict bool
		rules  int // rules of shop/t in the snapshot; -1 = no policy
		diags  []diag
	}{
		{
			name:  "no sources, no rules: one warning each",
			yaml:  "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n  destination: {kind: ServiceAccount, name: web}\n",
			rules: 0,
			diags: []diag{w("spec.sources", "no sources"), w("spec.rules", "no rules")},
		},
		{
			name:  "rules resolve against route groups",
			yaml:  "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n  destination: {kind: ServiceAccount, name: web}\n  sources: [{kind: ServiceAccount, name: a}]\n  rules: [{kind: HTTPRouteGroup, name: rg, matches: [m]}]\n" + routes,
			rules: 1,
		},
		{
			name:  "missing route and match: warnings naming the rule",
			yaml:  "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n  destination: {kind: ServiceAccount, name: web}\n  sources: [{kind: ServiceAccount, name: a}]\n  rules: [{kind: HTTPRouteGroup, name: rg, matches: [m, zz]}, {kind: TCPRoute, name: gone}]\n" + routes,
			rules: 1,
			diags: []diag{w("spec.rules[0].matches[1]", `match "zz" not found in http route shop/rg`), w("spec.rules[1]", "tcp route shop/gone not found")},
		},
		{
			name:   "missing route: error with Strict",
			strict: true,
			yaml:   "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n  destination: {kind: ServiceAccount, name: web}\n  sources: [{kind: ServiceAccount, name: a}]\n  rules: [{kind: TCPRoute, name: gone}]\n",
			rules:  0,
			diags:  []diag{e("spec.rules[0]", "tcp route shop/gone not found")},
		},
		{
			// As kubectl apply: the later document replaces the earlier one.
			name:  "duplicate names: the later document wins",
			yaml:  "apiVersion: access.smi-spec.io/v1alpha2\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n  destination: {kind: ServiceAccount, name: web}\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t, namespace: shop}\nspec:\n  destination: {kind: ServiceAccount, name: web}\n  sources: [{kind: ServiceAccount, name: a}]\n  rules: [{kind: HTTPRouteGroup, name: rg}]\n" + routes,
			rules: 1,
			diags: []diag{w("metadata.name", "duplicate TrafficTarget shop/t: overridden by test.yaml (document 1)")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap, ds := translateAndBuild(t, tc.yaml, nil, tc.strict)
			checkDiags(t, ds, tc.diags)
			got := -1
			for _, p := range snap.Policies {
				if p.Key == (spec.Key{Namespace: "shop", Name: "t"}) {
					got = len(p.Rules)
				}
			}
			if got != tc.rules {
				t.Errorf("policy shop/t has %d rules, want %d", got, tc.rules)
			}
		})
	}
}
