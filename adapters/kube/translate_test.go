package kube

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/spec"
)

// objects parses a multi-document YAML string the way the CLI would.
func objects(t testing.TB, yaml string) []adapters.Object {
	t.Helper()
	objs, diags := manifest.Parse("in.yaml", []byte(yaml))
	if len(diags) > 0 {
		t.Fatalf("test input does not parse: %v", diags)
	}
	return objs
}

func id(t *testing.T, td, ns, sa string) spiffeid.ID {
	t.Helper()
	v, err := spec.Identity(td, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func diagStrings(ds spec.Diagnostics) []string {
	ds = append(spec.Diagnostics(nil), ds...)
	ds.Sort()
	out := []string{}
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const app = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http-port}
  - {name: grpc-api, port: 9090, targetPort: 9091}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: web, version: v1}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web, ports: [{name: http-port, containerPort: 8080}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web-v2, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  serviceName: web
  template:
    metadata: {labels: {app: web, version: v2}}
    spec:
      containers: [{name: web, image: web, ports: [{name: http-port, containerPort: 8080}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-debug, namespace: shop, labels: {app: web}, annotations: {causeway.dev/injected: "true"}}
spec:
  serviceAccount: debugger
  containers: [{name: web, image: web}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: elsewhere, namespace: other}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {serviceAccountName: other, containers: [{name: x, image: x}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {serviceAccountName: db, containers: [{name: x, image: x}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080}
- {name: grpc-api, port: 9091}
endpoints:
- addresses: [10.0.0.1]
  zone: z1
  targetRef: {kind: Pod, name: web-debug}
- addresses: [10.0.0.2]
  conditions: {ready: false}
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: shop}
subsets:
- addresses: [{ip: 10.9.9.9}]
  ports: [{name: http, port: 8080}]
`

func TestTranslateService(t *testing.T) {
	t.Parallel()
	in, diags := Translate(objects(t, app), Options{})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diagStrings(diags))
	}
	td := "cluster.local"
	want := []spec.Service{{
		Key: spec.Key{Namespace: "shop", Name: "web"},
		Ports: []spec.Port{
			// The named target port resolves through the workloads' containers.
			{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP, TargetPort: 8080},
			{Name: "grpc-api", Port: 9090, Protocol: spec.ProtocolGRPC, TargetPort: 9091},
		},
		// The DaemonSet in "other" has the same labels but another namespace;
		// the StatefulSet names no account and runs as "default"; the Pod uses
		// the deprecated serviceAccount field; the ReplicaSet does not match.
		Identities: []spiffeid.ID{id(t, td, "shop", "web"), id(t, td, "shop", "default"), id(t, td, "shop", "debugger")},
		// The EndpointSlice wins over the Endpoints object.
		Endpoints: []spec.Endpoint{
			{Addr: "10.0.0.1", Port: 8080, ServicePort: 80, Ready: true, Zone: "z1", Identity: id(t, td, "shop", "debugger")},
			{Addr: "10.0.0.2", Port: 8080, ServicePort: 80, Ready: false},
			{Addr: "10.0.0.1", Port: 9091, ServicePort: 9090, Ready: true, Zone: "z1", Identity: id(t, td, "shop", "debugger")},
			{Addr: "10.0.0.2", Port: 9091, ServicePort: 9090, Ready: false},
		},
	}}
	if got, w := asJSON(t, in.Services), asJSON(t, want); got != w {
		t.Fatalf("services:\n%s\nwant:\n%s", got, w)
	}
	if in.Services[0].Origin.Source.Line != 2 || in.Services[0].Origin.Object.Kind != "Service" {
		t.Errorf("origin = %+v, want the Service document at line 2", in.Services[0].Origin)
	}
	if in.TrustDomain != td {
		t.Errorf("trust domain = %q", in.TrustDomain)
	}
}

func TestTranslateLegacyEndpointsAndOptions(t *testing.T) {
	t.Parallel()
	objs := objects(t, `
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}, annotations: {causeway.dev/injected: "true"}}
spec: {containers: [{name: x, image: x}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: db}
subsets:
- addresses: [{ip: 10.1.0.1, targetRef: {kind: Pod, name: db-0}}]
  notReadyAddresses: [{ip: 10.1.0.2}]
  ports: [{port: 5432}]
`)
	in, diags := Translate(objs, Options{TrustDomain: "example.org", DefaultNamespace: "data"})
	if len(diags) != 0 {
		t.Fatalf("diagnostics: %v", diagStrings(diags))
	}
	sa := id(t, "example.org", "data", "default")
	want := []spec.Service{{
		Key:        spec.Key{Namespace: "data", Name: "db"},
		Ports:      []spec.Port{{Port: 5432, Protocol: spec.ProtocolTCP}},
		Identities: []spiffeid.ID{sa},
		Endpoints: []spec.Endpoint{
			{Addr: "10.1.0.1", Port: 5432, ServicePort: 5432, Ready: true, Identity: sa},
			{Addr: "10.1.0.2", Port: 5432, ServicePort: 5432, Ready: false},
		},
	}}
	if got, w := asJSON(t, in.Services), asJSON(t, want); got != w {
		t.Fatalf("services:\n%s\nwant:\n%s", got, w)
	}
}

func TestProtocol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		port string
		want spec.Protocol
		warn string
	}{
		{port: `{port: 1}`, want: spec.ProtocolTCP},
		{port: `{port: 1, protocol: UDP}`, want: spec.ProtocolUDP},
		{port: `{port: 1, protocol: UDP, name: http}`, want: spec.ProtocolUDP},
		{port: `{port: 1, name: http}`, want: spec.ProtocolHTTP},
		{port: `{port: 1, name: http-web}`, want: spec.ProtocolHTTP},
		{port: `{port: 1, name: HTTP2-x}`, want: spec.ProtocolHTTP2},
		{port: `{port: 1, name: grpc-api}`, want: spec.ProtocolGRPC},
		{port: `{port: 1, name: tcp-db}`, want: spec.ProtocolTCP},
		{port: `{port: 1, name: https}`, want: spec.ProtocolTCP},
		{port: `{port: 1, name: httpx}`, want: spec.ProtocolTCP},
		{port: `{port: 1, name: udp-dns}`, want: spec.ProtocolTCP, warn: "says udp"},
		{port: `{port: 1, name: grpc, appProtocol: http}`, want: spec.ProtocolHTTP},
		{port: `{port: 1, appProtocol: kubernetes.io/h2c}`, want: spec.ProtocolHTTP2},
		{port: `{port: 1, appProtocol: h2c}`, want: spec.ProtocolHTTP2},
		{port: `{port: 1, appProtocol: http2}`, want: spec.ProtocolHTTP2},
		{port: `{port: 1, appProtocol: GRPC}`, want: spec.ProtocolGRPC},
		{port: `{port: 1, appProtocol: kubernetes.io/ws}`, want: spec.ProtocolHTTP},
		{port: `{port: 1, appProtocol: https, name: http}`, want: spec.ProtocolTCP},
		{port: `{port: 1, appProtocol: mysql, name: http-admin}`, want: spec.ProtocolHTTP},
		{port: `{port: 1, protocol: SCTP}`, want: "", warn: "SCTP is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.port, func(t *testing.T) {
			t.Parallel()
			objs := objects(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: ["+tc.port+"]\n")
			in, diags := Translate(objs, Options{})
			var got spec.Protocol
			if len(in.Services) == 1 && len(in.Services[0].Ports) == 1 {
				got = in.Services[0].Ports[0].Protocol
			}
			if got != tc.want {
				t.Errorf("protocol = %q, want %q", got, tc.want)
			}
			ds := diagStrings(diags)
			if tc.warn == "" && len(ds) != 0 || tc.warn != "" && (len(ds) != 1 || !strings.Contains(ds[0], tc.warn) || diags.HasErrors()) {
				t.Errorf("diagnostics = %q, want one warning with %q", ds, tc.warn)
			}
		})
	}
}

func TestTranslateDiagnostics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		yaml   string
		strict bool
		want   []string
	}{
		{
			name:   "unknown fields are errors with Strict",
			yaml:   "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\nspec:\n  ports: [{port: 80, nmae: http}]\n",
			strict: true,
			want:   []string{`in.yaml:1: Service ns/s: spec.ports[0].nmae: unknown field`},
		},
		{
			name: "unknown fields are all reported with their paths, as warnings",
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\nspec:\n  ports: [{port: 80, nmae: http}]\n  selectr: {a: b}\n",
			want: []string{
				`in.yaml:1: Service ns/s: spec.ports[0].nmae: warning: unknown field (ignored; an error with --strict)`,
				`in.yaml:1: Service ns/s: spec.selectr: warning: unknown field (ignored; an error with --strict)`,
			},
		},
		{
			name: "a wrong type names the field",
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\nspec:\n  ports: [{port: eighty}]\n",
			want: []string{`in.yaml:1: Service ns/s: spec.ports.port: expected int32, found string`},
		},
		{
			name: "unsupported versions are errors, not ignored",
			yaml: "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: e}\n---\napiVersion: extensions/v1beta1\nkind: DaemonSet\nmetadata: {name: x}\n",
			want: []string{
				`in.yaml:1: Deployment default/d: apiVersion: apps/v1beta1 Deployment is not supported; use apps/v1`,
				`in.yaml:5: EndpointSlice default/e: apiVersion: discovery.k8s.io/v1beta1 EndpointSlice is not supported; use discovery.k8s.io/v1`,
				`in.yaml:9: DaemonSet default/x: apiVersion: extensions/v1beta1 DaemonSet is not supported; use apps/v1`,
			},
		},
		{
			name: "names and namespaces are checked as the API server would",
			yaml: "apiVersion: v1\nkind: ServiceAccount\nmetadata: {namespace: <NAMESPACE>, name: sa}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: Web_1}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {}\n",
			want: []string{
				`in.yaml:1: ServiceAccount <NAMESPACE>/sa: metadata.namespace: invalid namespace "<NAMESPACE>": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`in.yaml:5: Service default/Web_1: metadata.name: invalid name "Web_1": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
				`in.yaml:9: Namespace : metadata.name: required`,
			},
		},
		{
			name: "endpoints of a Service that is not given, and slices that name no port",
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{name: a, port: 1}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: s-1, labels: {kubernetes.io/service-name: s}}\naddressType: IPv4\nports: [{name: b, port: 2}]\nendpoints: []\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: x-1, labels: {kubernetes.io/service-name: x}}\naddressType: IPv4\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: lone}\naddressType: IPv4\n",
			want: []string{
				`in.yaml:6: EndpointSlice default/s-1: ports[0].name: warning: no port named "b" in Service default/s; port left out`,
				`in.yaml:13: EndpointSlice default/x-1: metadata.labels: warning: Service default/x is not among the inputs; endpoints not used`,
				`in.yaml:18: EndpointSlice default/lone: metadata.labels: warning: no kubernetes.io/service-name label: the EndpointSlice belongs to no Service and is not used`,
			},
		},
		{
			name: "an ExternalName Service is left out with a warning",
			yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec: {type: ExternalName, externalName: example.com}\n",
			want: []string{`in.yaml:1: Service default/ext: spec.type: warning: ExternalName Service (example.com) has no workloads to mesh; left out`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, diags := Translate(objects(t, tc.yaml), Options{Strict: tc.strict})
			got := diagStrings(diags)
			if asJSON(t, got) != asJSON(t, tc.want) {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestHandles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		apiVersion, kind string
		want             bool
	}{
		{"v1", "Service", true},
		{"v1", "ConfigMap", false},
		{"apps/v1", "Deployment", true},
		{"apps/v1beta2", "Deployment", true},       // read, to be reported unsupported
		{"extensions/v1beta1", "Deployment", true}, // read, to say "use apps/v1"
		{"extensions/v1beta1", "Ingress", false},
		{"discovery.k8s.io/v1", "EndpointSlice", true},
		{"split.smi-spec.io/v1alpha2", "TrafficSplit", false},
	}
	for _, tc := range tests {
		t.Run(tc.apiVersion+"/"+tc.kind, func(t *testing.T) {
			t.Parallel()
			if got := Handles(&adapters.Object{APIVersion: tc.apiVersion, Kind: tc.kind}); got != tc.want {
				t.Fatalf("Handles = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzTranslate feeds arbitrary documents through the reader and the
// translator: nothing may panic, every diagnostic names its object's file,
// and every service that comes out has a key and valid protocols.
func FuzzTranslate(f *testing.F) {
	f.Add([]byte(app))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {selector: {a: b}, ports: [{port: 70000, targetPort: x, appProtocol: h2c}]}\n"))
	f.Add([]byte("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: e, labels: {kubernetes.io/service-name: s}}\nports: [{}]\nendpoints: [{addresses: []}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: Endpoints\nmetadata: {name: s}\nsubsets: [{addresses: [{ip: ''}], ports: [{port: -1}]}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {causeway.dev/export: 'true'}, annotations: {causeway.dev/export: 'no'}}\n---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: s}\nstatus: {conditions: [{}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _ := manifest.Parse("f.yaml", data)
		in, diags := Translate(objs, Options{})
		for _, d := range diags {
			if d.Source.File != "f.yaml" || d.Object.Kind == "" {
				t.Fatalf("diagnostic without file or object: %+v", d)
			}
		}
		for _, s := range in.Services {
			if s.Key.Name == "" || s.Key.Namespace == "" || s.Origin.Source.File != "f.yaml" {
				t.Fatalf("service without key or origin: %+v", s)
			}
			for _, p := range s.Ports {
				if !p.Protocol.Valid() {
					t.Fatalf("invalid protocol %q", p.Protocol)
				}
			}
		}
	})
}

func TestLeaveUndecided(t *testing.T) {
	t.Parallel()
	objs := objects(t, "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 1, name: web}, {port: 2, name: tcp-x}, {port: 3, name: grpc}, {port: 4, protocol: UDP}]\n")
	in, diags := Translate(objs, Options{LeaveUndecided: true})
	if len(diags) != 0 || len(in.Services) != 1 {
		t.Fatalf("services %+v, diagnostics %v", in.Services, diags)
	}
	var got []spec.Protocol
	for _, p := range in.Services[0].Ports {
		got = append(got, p.Protocol)
	}
	want := []spec.Protocol{"", spec.ProtocolTCP, spec.ProtocolGRPC, spec.ProtocolUDP}
	if asJSON(t, got) != asJSON(t, want) {
		t.Fatalf("protocols = %q, want %q", got, want)
	}
}

// A Pod without Causeway's sidecar has no identity on its endpoints: callers
// then send it plaintext, which is all it can answer.
func TestUninjectedPodEndpointsHaveNoIdentity(t *testing.T) {
	t.Parallel()
	objs := objects(t, `apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec: {selector: {app: db}, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: data, labels: {app: db}}
spec: {serviceAccountName: db, containers: [{name: x, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db-1, namespace: data, labels: {app: db}, annotations: {causeway.dev/injected: "true"}}
spec: {serviceAccountName: db, containers: [{name: x, image: x}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-x, namespace: data, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{port: 5432}]
endpoints:
- {addresses: [10.1.0.1], targetRef: {kind: Pod, name: db-0}}
- {addresses: [10.1.0.2], targetRef: {kind: Pod, name: db-1}}
`)
	in, diags := Translate(objs, Options{})
	if diags.HasErrors() {
		t.Fatal(diags.Err())
	}
	eps := in.Services[0].Endpoints
	if len(eps) != 2 {
		t.Fatalf("endpoints %+v", eps)
	}
	for _, ep := range eps {
		meshed := ep.Addr == "10.1.0.2"
		if got := !ep.Identity.IsZero(); got != meshed {
			t.Errorf("endpoint %s: identity %q, want meshed=%v", ep.Addr, ep.Identity, meshed)
		}
	}
}
