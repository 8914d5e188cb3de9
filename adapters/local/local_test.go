package local

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/spec"
)

func parse(t testing.TB, doc string) []adapters.Object {
	t.Helper()
	objs, diags := manifest.Parse("w.yaml", []byte(doc))
	if len(diags) > 0 {
		t.Fatalf("parse: %v", diags)
	}
	return objs
}

func strs(ds spec.Diagnostics) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

const bookstoreV1 = `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: bookstore-v1, namespace: bookstore, labels: {app: bookstore}}
spec:
  serviceAccount: bookstore
  service: bookstore-v1
  port: 14011
  command: [causeway, demo-app]
  outbound:
    httpProxyPort: 15001
    upstreams: [{service: mysql.db, port: 3306, localPort: 13306}, {service: cache, port: 6379, localPort: 16379}]
`

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		doc   string
		want  []string // diagnostics
		check func(t *testing.T, r Result)
	}{
		{
			name: "workload",
			doc:  bookstoreV1,
			check: func(t *testing.T, r Result) {
				want := Workload{
					Key: spec.Key{Namespace: "bookstore", Name: "bookstore-v1"}, ServiceAccount: "bookstore", Service: "bookstore-v1",
					Port: 14011, Command: []string{"causeway", "demo-app"},
					Outbound: Outbound{HTTPProxyPort: 15001, Upstreams: []Upstream{
						{Service: spec.Key{Namespace: "db", Name: "mysql"}, Port: 3306, LocalPort: 13306},
						{Service: spec.Key{Namespace: "bookstore", Name: "cache"}, Port: 6379, LocalPort: 16379},
					}},
					Identity: spiffeid.RequireFromString("spiffe://cluster.local/ns/bookstore/sa/bookstore"),
				}
				if len(r.Workloads) != 1 {
					t.Fatalf("workloads = %d, want 1", len(r.Workloads))
				}
				got := r.Workloads[0]
				got.Origin = spec.Origin{}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("workload =\n%+v\nwant\n%+v", got, want)
				}
			},
		},
		{
			name: "mesh names the trust domain of every workload, in any document order",
			doc: bookstoreV1 + `---
apiVersion: causeway.dev/v1alpha1
kind: Mesh
metadata: {name: m}
spec: {mode: permissive, trustDomain: example.org}
`,
			check: func(t *testing.T, r Result) {
				if r.Mesh == nil || r.Mesh.Mode != spec.ModePermissive || r.TrustDomain("x") != "example.org" {
					t.Fatalf("mesh = %+v", r.Mesh)
				}
				if got := r.Workloads[0].Identity.String(); got != "spiffe://example.org/ns/bookstore/sa/bookstore" {
					t.Fatalf("identity = %s", got)
				}
			},
		},
		{
			name: "client-only workload defaults its namespace",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: buyer}
spec: {serviceAccount: buyer, outbound: {httpProxyPort: 15001}}
`,
			check: func(t *testing.T, r Result) {
				w := r.Workload(spec.Key{Namespace: "default", Name: "buyer"})
				if w == nil || w.ServiceKey() != (spec.Key{}) || w.Identity.String() != "spiffe://cluster.local/ns/default/sa/buyer" {
					t.Fatalf("workload = %+v", r.Workloads)
				}
			},
		},
		{
			name: "env in order",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: w, namespace: ns}
spec:
  serviceAccount: sa
  env: [{name: GREETING, value: hi}, {name: LISTEN, value: "127.0.0.1:$(PORT)"}, {name: EMPTY}]
`,
			check: func(t *testing.T, r Result) {
				want := []EnvVar{{"GREETING", "hi"}, {"LISTEN", "127.0.0.1:$(PORT)"}, {"EMPTY", ""}}
				if len(r.Workloads) != 1 || !reflect.DeepEqual(r.Workloads[0].Env, want) {
					t.Fatalf("env = %+v, want %+v", r.Workloads, want)
				}
			},
		},
		{
			name: "bad env names",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: w, namespace: ns}
spec:
  serviceAccount: sa
  env: [{name: "1X"}, {name: A, value: a}, {name: A, value: b}]
`,
			want: []string{
				`w.yaml:2: Workload ns/w: spec.env[0].name: invalid variable name "1X": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')`,
				`w.yaml:2: Workload ns/w: spec.env[2].name: A is already set by spec.env[1]`,
			},
		},
		{
			name: "MeshConfig is the Mesh by deploy/crds' name",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: MeshConfig
metadata: {name: m}
spec: {mode: permissive, trustDomain: example.org}
`,
			check: func(t *testing.T, r Result) {
				if r.Mesh == nil || r.Mesh.Mode != spec.ModePermissive || r.Mesh.Origin.Object.Kind != "MeshConfig" {
					t.Fatalf("mesh = %+v", r.Mesh)
				}
			},
		},
		{
			name: "unknown and mistyped fields are named with their path",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: w, namespace: ns}
spec: {serviceAccount: sa, service: s, port: 80, comand: [x], outbound: {upstreams: [{service: a.b, port: 1, localPort: 2, tls: true}]}}
`,
			want: []string{
				"w.yaml:2: Workload ns/w: spec.comand: unknown field",
				"w.yaml:2: Workload ns/w: spec.outbound.upstreams[0].tls: unknown field",
			},
		},
		{
			name: "wrong type",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: w, namespace: ns}
spec: {serviceAccount: sa, service: s, port: "http"}
`,
			want: []string{"w.yaml:2: Workload ns/w: spec.port: expected int32, found string"},
		},
		{
			name: "every problem at once",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: w, namespace: ns}
spec:
  service: Bad_Name
  outbound:
    httpProxyPort: 70000
    upstreams: [{service: "", port: 0, localPort: 1}, {service: a.b.c, port: 1, localPort: 2}]
`,
			want: []string{
				`w.yaml:2: Workload ns/w: spec.outbound.httpProxyPort: port 70000 out of range 1-65535`,
				`w.yaml:2: Workload ns/w: spec.outbound.upstreams[0].port: required`,
				`w.yaml:2: Workload ns/w: spec.outbound.upstreams[0].service: required`,
				`w.yaml:2: Workload ns/w: spec.outbound.upstreams[1].service: service "a.b.c": want name.namespace: must not contain dots`,
				`w.yaml:2: Workload ns/w: spec.port: required`,
				`w.yaml:2: Workload ns/w: spec.service: invalid Service name "Bad_Name": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`w.yaml:2: Workload ns/w: spec.serviceAccount: required`,
			},
		},
		{
			name: "two workloads on one loopback port",
			doc: bookstoreV1 + `---
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: bookstore-v2, namespace: bookstore}
spec: {serviceAccount: bookstore, service: bookstore-v2, port: 14012, outbound: {httpProxyPort: 14011}}
`,
			want: []string{"w.yaml:14: Workload bookstore/bookstore-v2: spec.outbound.httpProxyPort: loopback port 14011 is already used by Workload bookstore/bookstore-v1 spec.port"},
			check: func(t *testing.T, r Result) {
				if len(r.Workloads) != 1 || r.Workloads[0].Key.Name != "bookstore-v1" {
					t.Fatalf("workloads = %+v, want only bookstore-v1", r.Workloads)
				}
			},
		},
		{
			name: "other versions and unknown kinds",
			doc: `
apiVersion: causeway.dev/v1beta9
kind: Workload
metadata: {name: w, namespace: ns}
spec: {serviceAccount: sa}
---
apiVersion: causeway.dev/v1alpha1
kind: Gateway
metadata: {name: g}
`,
			want: []string{
				"w.yaml:2: Workload ns/w: apiVersion: causeway.dev/v1beta9 Workload is not supported; use causeway.dev/v1alpha1",
				`w.yaml:7: Gateway g: kind: unknown kind "Gateway" in causeway.dev/v1alpha1 (want one of Mesh, MeshConfig, Workload, Cluster, ClusterLink)`,
			},
		},
		{
			name: "mesh mode, trust domain, second mesh",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Mesh
metadata: {name: a}
spec: {mode: lax, trustDomain: "Bad Domain"}
---
apiVersion: causeway.dev/v1alpha1
kind: Mesh
metadata: {name: b}
spec: {}
---
apiVersion: causeway.dev/v1alpha1
kind: Mesh
metadata: {name: c}
spec: {}
`,
			want: []string{
				`w.yaml:2: Mesh a: spec.mode: unknown mode "lax" (want strict or permissive)`,
				`w.yaml:2: Mesh a: spec.trustDomain: trust domain characters are limited to lowercase letters, numbers, dots, dashes, and underscores`,
				`w.yaml:12: Mesh c: metadata.name: a second Mesh: Mesh b already sets the mesh's settings`,
			},
			check: func(t *testing.T, r Result) {
				if r.Mesh == nil || r.Mesh.Mode != spec.ModeStrict || r.TrustDomain("cluster.local") != "cluster.local" {
					t.Fatalf("mesh = %+v, want b's defaults", r.Mesh)
				}
			},
		},
		{
			name: "clusters and links",
			doc: `
apiVersion: causeway.dev/v1alpha1
kind: Cluster
metadata: {name: east}
spec: {trustDomain: east.example, gatewayPort: 16001, adminPort: 16002}
---
apiVersion: causeway.dev/v1alpha1
kind: Cluster
metadata: {name: west}
spec: {trustDomain: ""}
---
apiVersion: causeway.dev/v1alpha1
kind: ClusterLink
metadata: {name: east-west}
spec: {clusters: [east, west]}
---
apiVersion: causeway.dev/v1alpha1
kind: ClusterLink
metadata: {name: lonely}
spec: {clusters: [east, east]}
`,
			want: []string{
				`w.yaml:7: Cluster west: spec.trustDomain: required`,
				`w.yaml:12: ClusterLink east-west: spec.clusters[1]: warning: cluster "west" is not defined by any Cluster among the inputs`,
				`w.yaml:17: ClusterLink lonely: spec.clusters[1]: cluster "east" listed twice`,
			},
			check: func(t *testing.T, r Result) {
				if len(r.Clusters) != 1 || !reflect.DeepEqual(r.Clusters[0], Cluster{Name: "east", TrustDomain: "east.example", GatewayPort: 16001, AdminPort: 16002, Origin: r.Clusters[0].Origin}) {
					t.Fatalf("clusters = %+v", r.Clusters)
				}
				if len(r.ClusterLinks) != 1 || !slices.Equal(r.ClusterLinks[0].Clusters, []string{"east", "west"}) {
					t.Fatalf("links = %+v", r.ClusterLinks)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, diags := Decode(parse(t, tc.doc), Options{})
			if got := strs(diags); !slices.Equal(got, tc.want) {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestTranslateCarriesMeshMode(t *testing.T) {
	t.Parallel()
	in, diags := Translate(parse(t, `
apiVersion: causeway.dev/v1alpha1
kind: Mesh
metadata: {name: m}
spec: {mode: permissive}
`), Options{})
	if len(diags) > 0 || in.Mode != spec.ModePermissive || len(in.Services) != 0 {
		t.Fatalf("input = %+v, diags %v", in, diags)
	}
}

func TestAttach(t *testing.T) {
	t.Parallel()
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/bookstore/sa/bookstore")
	other := spiffeid.RequireFromString("spiffe://cluster.local/ns/bookstore/sa/old")
	base := func() spec.Input {
		return spec.Input{Services: []spec.Service{
			{Key: spec.Key{Namespace: "bookstore", Name: "bookstore-v1"}, Identities: []spiffeid.ID{other},
				Ports: []spec.Port{{Name: "admin", Port: 9000, Protocol: spec.ProtocolHTTP}, {Name: "http", Port: 14001, TargetPort: 14011, Protocol: spec.ProtocolHTTP}}},
			{Key: spec.Key{Namespace: "bookstore", Name: "plain"}, Ports: []spec.Port{{Port: 8080, Protocol: spec.ProtocolTCP}}},
		}}
	}
	w := func(svc string, port int32) Workload {
		return Workload{Key: spec.Key{Namespace: "bookstore", Name: "w-" + svc}, ServiceAccount: "bookstore", Service: svc, Port: port, Identity: id,
			Origin: spec.Origin{Source: spec.Source{File: "w.yaml", Line: 3}, Object: spec.Object{Kind: "Workload", Namespace: "bookstore", Name: "w-" + svc}}}
	}
	inbound := func(w *Workload) (string, int32) { return "127.0.0.1", 20000 + int32(len(w.Key.Name)) }
	tests := []struct {
		name      string
		ws        []Workload
		want      []string
		endpoints map[string][]spec.Endpoint
	}{
		{
			name: "endpoint on the port that targets the workload",
			ws:   []Workload{w("bookstore-v1", 14011)},
			endpoints: map[string][]spec.Endpoint{"bookstore-v1": {{Addr: "127.0.0.1", Port: 20014, ServicePort: 14001, Ready: true,
				Labels: map[string]string{LabelWorkload: "w-bookstore-v1"}, Identity: id}}},
		},
		{
			name:      "a port without targetPort targets itself",
			ws:        []Workload{w("plain", 8080)},
			endpoints: map[string][]spec.Endpoint{"plain": {{Addr: "127.0.0.1", Port: 20007, ServicePort: 8080, Ready: true, Labels: map[string]string{LabelWorkload: "w-plain"}, Identity: id}}},
		},
		{
			name: "missing service and untargeted port",
			ws:   []Workload{w("gone", 1), w("bookstore-v1", 14001)},
			want: []string{
				"w.yaml:3: Workload bookstore/w-bookstore-v1: spec.port: 14001 is not the target port of any port of Service bookstore/bookstore-v1 (ports: 9000->9000, 14001->14011)",
				"w.yaml:3: Workload bookstore/w-gone: spec.service: Service bookstore/gone is not among the inputs",
			},
		},
		{
			name: "client-only workloads add nothing",
			ws:   []Workload{{Key: spec.Key{Namespace: "x", Name: "buyer"}, ServiceAccount: "buyer"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := base()
			before := base()
			diags := Attach(&in, tc.ws, inbound)
			diags.Sort()
			if got := strs(diags); !slices.Equal(got, tc.want) {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for i, svc := range in.Services {
				want := tc.endpoints[svc.Key.Name]
				if !reflect.DeepEqual(svc.Endpoints, want) {
					t.Errorf("%s endpoints = %+v, want %+v", svc.Key, svc.Endpoints, want)
				}
				wantIDs := before.Services[i].Identities
				if len(want) > 0 {
					wantIDs = append(slices.Clone(wantIDs), id)
				}
				if !slices.Equal(svc.Identities, wantIDs) {
					t.Errorf("%s identities = %v, want %v", svc.Key, svc.Identities, wantIDs)
				}
			}
			// The snapshot built from the result is valid: Attach's output is
			// what spec.Build expects.
			if len(tc.want) == 0 {
				if _, d := spec.Build(in, spec.BuildOptions{}); d.HasErrors() {
					t.Fatalf("build: %v", d)
				}
			}
		})
	}
}
