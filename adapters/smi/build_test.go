package smi

import (
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// translateAndBuild runs the whole path a user's manifests take: translate,
// add the Services (the Kubernetes adapter's job, built by hand here), Build.
func translateAndBuild(t *testing.T, src string, svcs []spec.Service, strict bool) (*spec.Snapshot, spec.Diagnostics) {
	t.Helper()
	in, ds := Translate(objects(t, src), Options{Strict: strict})
	in.Services = append(in.Services, svcs...)
	snap, bds := spec.Build(in, spec.BuildOptions{Strict: strict})
	return snap, append(ds, bds...)
}

func TestSplitThroughBuild(t *testing.T) {
	t.Parallel()
	web := services("shop", []int32{80}, "web", "web-a", "web-b", "web-c")
	k := func(n string) spec.Key { return spec.Key{Namespace: "shop", Name: n} }
	head := "apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\n"
	cases := []struct {
		name     string
		yaml     string
		svcs     []spec.Service
		strict   bool
		backends []spec.Backend // of the one split in the snapshot; nil = no split
		matches  []spec.RouteRef
		diags    []diag
	}{
		{
			name:     "90/10",
			yaml:     head + "spec:\n  service: web\n  backends:\n  - {service: web-a, weight: 90}\n  - {service: web-b, weight: 10}",
			svcs:     web,
			backends: []spec.Backend{be(k("web-a"), 90000), be(k("web-b"), 10000)},
		},
		{
			name: "quantity 500m",
			yaml: `apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, weight: 500m}
  - {service: web-b, weight: 500m}`,
			svcs:     web,
			backends: []spec.Backend{be(k("web-a"), 500), be(k("web-b"), 500)},
		},
		{
			name:  "negative weight is one error, from Build, with the SMI field",
			yaml:  "apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\nspec:\n  service: web\n  backends:\n  - {service: web-a, weight: -500m}\n  - {service: web-b, weight: 1}",
			svcs:  web,
			diags: []diag{e("spec.backends[0].weight", "must be >= 0, got -0.5")},
			// The snapshot keeps the good backend; the error stops publication.
			backends: []spec.Backend{be(k("web-b"), 1000)},
		},
		{
			name:  "all-zero weights",
			yaml:  head + "spec:\n  service: web\n  backends:\n  - {service: web-a, weight: 0}\n  - {service: web-b, weight: 0}",
			svcs:  web,
			diags: []diag{e("spec.backends", "all backend weights are zero")},
		},
		{
			name:     "split listing its own root",
			yaml:     head + "spec:\n  service: web\n  backends:\n  - {service: web, weight: 50}\n  - {service: web-a, weight: 50}",
			svcs:     web,
			backends: []spec.Backend{be(k("web"), 50000), be(k("web-a"), 50000)},
			diags:    []diag{w("spec.backends[0].service", "backend is the root service itself")},
		},
		{
			name: "nested split",
			yaml: head + "spec:\n  service: web\n  backends:\n  - {service: web-a, weight: 1}\n---\n" +
				"apiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: inner, namespace: shop}\nspec:\n  service: web-a\n  backends:\n  - {service: web-b, weight: 1}",
			svcs:     web,
			diags:    []diag{w("spec.backends[0].service", "backend shop/web-a is itself split")},
			backends: []spec.Backend{be(k("web-a"), 1000)},
		},
		{
			name:  "backend lacking a root port is dropped",
			yaml:  head + "spec:\n  service: web\n  backends:\n  - {service: web-a, weight: 1}\n  - {service: other, weight: 1}",
			svcs:  append(services("shop", []int32{80}, "web", "web-a"), services("shop", []int32{8080}, "other")...),
			diags: []diag{w("spec.backends[1].service", "lacks root service port(s) [80]; backend dropped")},
			// The one good backend remains.
			backends: []spec.Backend{be(k("web-a"), 1000)},
		},
		{
			name:     "duplicate names: the later document wins, as kubectl apply",
			yaml:     head + "spec:\n  service: web\n  backends:\n  - {service: web-a, weight: 1}\n---\n" + head + "spec:\n  service: web-c\n  backends:\n  - {service: web-b, weight: 1}",
			svcs:     web,
			diags:    []diag{w("metadata.name", "duplicate TrafficSplit shop/s: overridden by test.yaml (document 1)")},
			backends: []spec.Backend{be(k("web-b"), 1000)},
		},
		{
			name:  "missing services and route group: warnings",
			yaml:  "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\nspec:\n  service: web\n  matches: [{kind: HTTPRouteGroup, name: nope}]\n  backends:\n  - {service: gone, weight: 1}\n  - {service: web-a, weight: 1}",
			svcs:  web,
			diags: []diag{w("spec.backends[0].service", "backend service shop/gone not found"), w("spec.matches[0]", "http route shop/nope not found"), w("spec.matches", "split left out")},
		},
		{
			name:   "missing services and route group: errors with Strict",
			yaml:   "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\nspec:\n  service: web\n  matches: [{kind: HTTPRouteGroup, name: nope}]\n  backends:\n  - {service: gone, weight: 1}\n  - {service: web-a, weight: 1}",
			svcs:   web,
			strict: true,
			diags:  []diag{e("spec.backends[0].service", "backend service shop/gone not found"), e("spec.matches[0]", "http route shop/nope not found"), e("spec.matches", "split left out")},
		},
		{
			name: "matches resolve against the route group",
			yaml: "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\nspec:\n  service: web\n  matches: [{kind: HTTPRouteGroup, name: ff}]\n  backends:\n  - {service: web-a, weight: 1}\n---\n" +
				"apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: ff, namespace: shop}\nspec:\n  matches:\n  - name: firefox\n    headers: [{user-agent: '.*Firefox.*'}]",
			svcs:     web,
			backends: []spec.Backend{be(k("web-a"), 1000)},
			matches:  []spec.RouteRef{{Kind: spec.RouteHTTP, Key: k("ff")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap, ds := translateAndBuild(t, tc.yaml, tc.svcs, tc.strict)
			checkDiags(t, ds, tc.diags)
			var got *spec.Split
			for i := range snap.Splits {
				if snap.Splits[i].Key == k("s") {
					got = &snap.Splits[i]
				}
			}
			if tc.backends == nil {
				if got != nil {
					t.Errorf("split in snapshot: %+v", got)
				}
				return
			}
			if got == nil {
				t.Fatalf("no split shop/s in snapshot")
			}
			if !reflect.DeepEqual(got.Backends, tc.backends) {
				t.Errorf("backends = %v, want %v", got.Backends, tc.backends)
			}
			if !reflect.DeepEqual(got.Matches, tc.matches) {
				t.Errorf("matches = %v, want %v", got.Matches, tc.matches)
			}
		})
	}
}
