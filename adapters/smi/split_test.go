package smi

import (
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

func TestTrafficSplit(t *testing.T) {
	t.Parallel()
	k := func(ns, n string) spec.Key { return spec.Key{Namespace: ns, Name: n} }
	cases := []struct {
		name     string
		yaml     string
		root     spec.Key
		backends []spec.Backend
		matches  []spec.RouteRef
		diags    []diag
	}{
		{
			name: "v1alpha1 quantities 500m, 1 and 1.5",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, weight: 500m}
  - {service: web-b, weight: 1}
  - {service: web-c, weight: "1.5"}`,
			root:     k("shop", "web"),
			backends: []spec.Backend{be(k("shop", "web-a"), 500), be(k("shop", "web-b"), 1000), be(k("shop", "web-c"), 1500)},
		},
		{
			name: "v1alpha1 negative quantity is passed to Build",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, weight: -500m}`,
			root:     k("shop", "web"),
			backends: []spec.Backend{be(k("shop", "web-a"), -500)},
		},
		{
			name: "v1alpha1 finer than thousandths is rounded with a warning",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, weight: 1500u}`,
			root:     k("shop", "web"),
			backends: []spec.Backend{be(k("shop", "web-a"), 2)},
			diags:    []diag{w("spec.backends[0].weight", "finer than thousandths; read as 0.002")},
		},
		{
			name: "v1alpha1 missing, malformed and huge weights",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a}
  - {service: web-b, weight: 5G}
  - {service: web-c, weight: lots}`,
			diags: []diag{
				e("spec.backends[2].weight", `invalid value string "lots"`),
			},
		},
		{
			name: "v1alpha1 missing and huge weights",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a}
  - {service: web-b, weight: 5G}`,
			diags: []diag{
				e("spec.backends[0].weight", "required"),
				e("spec.backends[1].weight", "too large"),
			},
		},
		{
			name: "v1alpha1 service given as FQDN",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web.shop.svc.cluster.local
  backends:
  - {service: web-a.shop, weight: 1}`,
			root:     k("shop", "web"),
			backends: []spec.Backend{be(k("shop", "web-a"), 1000)},
		},
		{
			name: "service in another namespace is a warning",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web.other
  backends:
  - {service: web-a, weight: 1}`,
			root:     k("other", "web"),
			backends: []spec.Backend{be(k("shop", "web-a"), 1000)},
			diags:    []diag{w("spec.service", "another namespace")},
		},
		{
			name: "invalid service names",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: Web_Server
  backends:
  - {service: a.b.c, weight: 1}
  - {service: "", weight: 1}`,
			diags: []diag{
				e("spec.service", `service name "Web_Server"`),
				e("spec.backends[0].service", "is not a service name"),
				e("spec.backends[1].service", "required"),
			},
		},
		{
			name: "v1alpha2 integer weights are relative, in thousandths",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, weight: 90}
  - {service: web-b, weight: 10}`,
			root:     k("shop", "web"),
			backends: []spec.Backend{be(k("shop", "web-a"), 90000), be(k("shop", "web-b"), 10000)},
		},
		{
			name: "v1alpha2 wrong types and typos, all at once",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, wieght: 90}
  - {service: web-b, weight: "10"}
  - {service: web-c, weight: 0.5}`,
			diags: []diag{
				w("spec.backends[0].wieght", `unknown field "wieght"`),
				e("spec.backends[1].weight", `wrong type: got string "10", want integer`),
				e("spec.backends[2].weight", `wrong type: got number 0.5, want integer`),
			},
		},
		{
			name: "v1alpha2 typo leaves weight missing",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, Weight: 90}`,
			diags: []diag{
				w("spec.backends[0].Weight", `did you mean "weight"`),
				e("spec.backends[0].weight", "required"),
			},
		},
		{
			name: "v1alpha3 matches name HTTPRouteGroups; the rest goes to the root",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches:
  - {kind: HTTPRouteGroup, name: firefox}
  - {kind: HTTPRouteGroup, apiGroup: specs.smi-spec.io, name: beta}
  backends:
  - {service: web-v2, weight: 100}`,
			root:     k("shop", "web"),
			backends: []spec.Backend{be(k("shop", "web-v2"), 100000)},
			matches:  []spec.RouteRef{{Kind: spec.RouteHTTP, Key: k("shop", "firefox")}, {Kind: spec.RouteHTTP, Key: k("shop", "beta")}},
		},
		{
			name: "v1alpha4 matches must be HTTPRouteGroups of specs.smi-spec.io",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches:
  - {kind: TCPRoute, name: db}
  - {kind: HTTPRouteGroup, apiGroup: split.smi-spec.io, name: x}
  - {kind: HTTPRouteGroup}
  backends:
  - {service: web-v2, weight: 100}`,
			diags: []diag{
				e("spec.matches[0].kind", `"TCPRoute" cannot be matched`),
				e("spec.matches[1].apiGroup", "HTTPRouteGroup is in specs.smi-spec.io"),
				e("spec.matches[2].name", "required"),
			},
		},
		{
			name: "namespace defaults to the option",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s}
spec:
  service: web
  backends:
  - {service: web-v2, weight: 1}`,
			root:     k("default", "web"),
			backends: []spec.Backend{be(k("default", "web-v2"), 1000)},
		},
		{
			name: "unknown version names apiVersion",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha9
kind: TrafficSplit
metadata: {name: s}
spec: {service: web}`,
			diags: []diag{e("apiVersion", `unknown version "v1alpha9" of TrafficSplit in split.smi-spec.io (known: v1alpha1, v1alpha2, v1alpha3, v1alpha4)`)},
		},
		{
			name: "unknown kind of an SMI group",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficMirror
metadata: {name: s}`,
			diags: []diag{e("kind", `kind "TrafficMirror" is not part of split.smi-spec.io`)},
		},
		{
			name: "spec of the wrong type",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s}
spec: [web]`,
			diags: []diag{e("spec", "wrong type: got list, want object")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, ds := Translate(objects(t, tc.yaml), Options{})
			checkDiags(t, ds, tc.diags)
			if ds.HasErrors() {
				if len(in.Splits) != 0 {
					t.Errorf("split with errors was translated: %+v", in.Splits)
				}
				return
			}
			if len(in.Splits) != 1 {
				t.Fatalf("got %d splits, want 1", len(in.Splits))
			}
			sp := in.Splits[0]
			if sp.Root != tc.root {
				t.Errorf("root = %v, want %v", sp.Root, tc.root)
			}
			if !reflect.DeepEqual(sp.Backends, tc.backends) {
				t.Errorf("backends = %v, want %v", sp.Backends, tc.backends)
			}
			if !reflect.DeepEqual(sp.Matches, tc.matches) {
				t.Errorf("matches = %v, want %v", sp.Matches, tc.matches)
			}
			if sp.Origin.Object.Kind != "TrafficSplit" || sp.Origin.Source.File != "test.yaml" {
				t.Errorf("origin = %+v", sp.Origin)
			}
		})
	}
}
