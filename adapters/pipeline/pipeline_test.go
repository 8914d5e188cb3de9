package pipeline

import (
	"slices"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/spec"
)

func parse(t *testing.T, file, yaml string) []adapters.Object {
	t.Helper()
	objs, diags := manifest.Parse(file, []byte(yaml))
	if len(diags) > 0 {
		t.Fatalf("parse: %v", diags)
	}
	return objs
}

// TestRegistry checks the visible order of the registry: core kinds first,
// then SMI, each taking only its own groups.
func TestRegistry(t *testing.T) {
	t.Parallel()
	ts := Translators()
	var names []string
	for _, tr := range ts {
		names = append(names, tr.Name)
	}
	if !slices.Equal(names, []string{"kube", "smi", "local"}) {
		t.Fatalf("registry = %v, want [kube smi local]", names)
	}
	tests := []struct {
		apiVersion, kind, want string
	}{
		{"v1", "Service", "kube"},
		{"apps/v1", "Deployment", "kube"},
		{"split.smi-spec.io/v1alpha4", "TrafficSplit", "smi"},
		{"specs.smi-spec.io/v1alpha1", "TCPRoute", "smi"},
		{"causeway.dev/v1alpha1", "Workload", "local"},
		{"v1", "ConfigMap", ""},
		{"networking.k8s.io/v1", "Ingress", ""},
	}
	for _, tc := range tests {
		t.Run(tc.apiVersion+"/"+tc.kind, func(t *testing.T) {
			t.Parallel()
			o := &adapters.Object{APIVersion: tc.apiVersion, Kind: tc.kind}
			got := ""
			if i := slices.IndexFunc(ts, func(tr Translator) bool { return tr.Handles(o) }); i >= 0 {
				got = ts[i].Name
			}
			if got != tc.want {
				t.Fatalf("handled by %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTranslateWith uses a registry of fakes to show how objects are routed:
// the first translator that handles an object gets it (in file and document
// order), nameless objects are errors, the rest come back as ignored.
func TestTranslateWith(t *testing.T) {
	t.Parallel()
	var seenA, seenB []string
	fake := func(name string, kinds []string, seen *[]string) Translator {
		return Translator{
			Name:    name,
			Handles: func(o *adapters.Object) bool { return slices.Contains(kinds, o.Kind) },
			Translate: func(objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics) {
				var in spec.Input
				for _, o := range objs {
					*seen = append(*seen, o.Kind+"/"+o.Name)
					in.Services = append(in.Services, spec.Service{Key: spec.Key{Namespace: opts.DefaultNamespace, Name: o.Name}})
				}
				return in, nil
			},
		}
	}
	ts := []Translator{fake("a", []string{"A", "AB"}, &seenA), fake("b", []string{"B", "AB"}, &seenB)}
	objs := append(parse(t, "2.yaml", "apiVersion: x/v1\nkind: B\nmetadata: {name: b2}\n"),
		parse(t, "1.yaml", "apiVersion: x/v1\nkind: AB\nmetadata: {name: ab}\n---\napiVersion: x/v1\nkind: C\nmetadata: {name: c}\n---\napiVersion: x/v1\nkind: A\n---\napiVersion: x/v1\nkind: B\nmetadata: {name: b1}\n")...)
	in, diags, ignored := TranslateWith(ts, objs, Options{DefaultNamespace: "ns"})
	if !slices.Equal(seenA, []string{"AB/ab"}) || !slices.Equal(seenB, []string{"B/b1", "B/b2"}) {
		t.Errorf("routed a=%v b=%v", seenA, seenB)
	}
	if len(ignored) != 1 || ignored[0].Kind != "C" {
		t.Errorf("ignored = %+v, want the C object", ignored)
	}
	if len(diags) != 1 || diags[0].String() != "1.yaml:9: A (unnamed): metadata.name: required" {
		t.Errorf("diagnostics = %v", diags)
	}
	if len(in.Services) != 3 || in.TrustDomain != "cluster.local" {
		t.Errorf("input = %+v", in)
	}
	if got := Ignored(ignored[0]); got != "1.yaml:5: C c (not used by Causeway)" {
		t.Errorf("Ignored() = %q", got)
	}
}

// TestLoad runs the whole path on a small mesh: a Service with its
// workloads, a split, and a Kubernetes kind Causeway does not use.
func TestLoad(t *testing.T) {
	t.Parallel()
	stdin := strings.NewReader(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web, v: "2"}, ports: [{name: http, port: 80}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v2, namespace: shop}
spec:
  selector: {matchLabels: {app: web, v: "2"}}
  template:
    metadata: {labels: {app: web, v: "2"}}
    spec: {serviceAccountName: web, containers: [{name: web, image: web}]}
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: canary, namespace: shop}
spec: {service: web, backends: [{service: web, weight: 90}, {service: web-v2, weight: 10}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: shop}
`)
	snap, diags, ignored, err := Load([]string{"-"}, stdin, Options{TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if diags.HasErrors() {
		t.Fatalf("errors: %v", diags)
	}
	if len(ignored) != 1 || ignored[0].Kind != "ConfigMap" {
		t.Errorf("ignored = %+v", ignored)
	}
	web := snap.Service(spec.Key{Namespace: "shop", Name: "web"})
	if web == nil || len(web.Identities) != 1 || web.Identities[0].String() != "spiffe://example.org/ns/shop/sa/web" {
		t.Fatalf("web service = %+v", web)
	}
	if len(snap.Splits) != 1 || len(snap.Splits[0].Backends) != 2 || snap.Splits[0].Backends[1].Weight != 10000 {
		t.Fatalf("splits = %+v", snap.Splits)
	}
	if _, _, _, err := Load([]string{"/nonexistent/path.yaml"}, nil, Options{}); err == nil {
		t.Fatal("Load of a missing path: no error")
	}
}

// TestUndecidedPorts shows how ports nothing in the Service describes get
// their protocol from the SMI objects that target the service.
func TestUndecidedPorts(t *testing.T) {
	t.Parallel()
	const base = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: web-port, port: 80}, {name: tcp-admin, port: 81}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: web, containers: [{name: web, image: web}]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes, namespace: shop}
spec: {matches: [{name: all, pathRegex: /}]}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp, namespace: shop}
spec: {matches: {ports: []}}
`
	target := func(kind string) string {
		return `---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources: [{kind: ServiceAccount, name: client, namespace: shop}]
  rules: [{kind: ` + kind + `, name: ` + map[string]string{"HTTPRouteGroup": "routes", "TCPRoute": "tcp"}[kind] + `}]
`
	}
	const split = `---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: routes}]
  backends: [{service: web, weight: 1}]
`
	tests := []struct {
		name  string
		extra string
		want  spec.Protocol // of the undecided port 80; port 81 is tcp by name
	}{
		{name: "nothing says HTTP", extra: "", want: spec.ProtocolTCP},
		{name: "an HTTP TrafficTarget rule for the service's identity", extra: target("HTTPRouteGroup"), want: spec.ProtocolHTTP},
		{name: "a TCP TrafficTarget rule", extra: target("TCPRoute"), want: spec.ProtocolTCP},
		{name: "a TrafficSplit with HTTP matches", extra: split, want: spec.ProtocolHTTP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			snap, diags, _ := Build(parse(t, "in.yaml", base+tc.extra), Options{})
			if diags.HasErrors() {
				t.Fatalf("errors: %v", diags)
			}
			web := snap.Service(spec.Key{Namespace: "shop", Name: "web"})
			if web == nil || len(web.Ports) != 2 {
				t.Fatalf("service = %+v", web)
			}
			if web.Ports[0].Protocol != tc.want || web.Ports[1].Protocol != spec.ProtocolTCP {
				t.Fatalf("protocols = %q, %q; want %q, tcp", web.Ports[0].Protocol, web.Ports[1].Protocol, tc.want)
			}
		})
	}
}
