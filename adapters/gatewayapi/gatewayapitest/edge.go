package gatewayapitest

import (
	"os"
	"path/filepath"
	"testing"
)

// services is the Kubernetes half every edge case shares: a root service
// "web" (HTTP 8080 and TCP 9000, UDP 5353) with versions v1, v2 and a
// nested v3 whose own split lives in the same namespace; workloads run as
// service account "web" (Deployments give the services identities).
const services = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 18080, appProtocol: http}
  - {name: tcp-db, port: 9000, targetPort: 19000, appProtocol: tcp}
  - {name: dns, port: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 18080, appProtocol: http}
  - {name: tcp-db, port: 9000, targetPort: 19000, appProtocol: tcp}
  - {name: dns, port: 5353, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 8080, targetPort: 18080, appProtocol: http}
  - {name: tcp-db, port: 9000, targetPort: 19000, appProtocol: tcp}
  - {name: dns, port: 5353, protocol: UDP}
`

// EdgeCases are small manifest sets for the rules the renderings must
// keep: zero and fractional weights, HTTP matches with methods and header
// regexes, nested splits, TCP and UDP splits, access rules.
var EdgeCases = []struct{ Name, YAML string }{
	{"weights", services + `
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 500m}
  - {service: web-v2, weight: "1"}
`},
	{"weight-zero", services + `
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 0}
  - {service: web-v2, weight: 100}
`},
	{"weight-rounded", services + `
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 1m}
  - {service: web-v2, weight: "2000000"}
`},
	{"http-matches", services + `
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: canary, namespace: shop}
spec:
  matches:
  - name: books
    pathRegex: /books
    methods: [GET, POST]
    headers:
    - x-canary: "true"
    - user-agent: ".*Mozilla.*"
  - name: exact
    pathRegex: /health$
  - name: either
    pathRegex: "/(a|b)/.*"
    methods: ["*"]
  - name: not-exact
    pathRegex: "/a//b$"
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-canary, namespace: shop}
spec:
  service: web
  matches:
  - {kind: HTTPRouteGroup, name: canary}
  backends:
  - {service: web-v2, weight: 100}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 90}
  - {service: web-v2, weight: 10}
`},
	{"nested", services + `
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-split, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 50}
  - {service: web-v2, weight: 50}
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: v1-split, namespace: shop}
spec:
  service: web-v1
  backends:
  - {service: web-v2, weight: 1}
`},
	{"tcp", services + `
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  selector: {app: db}
  ports:
  - {name: tcp-db, port: 5432, appProtocol: tcp}
---
apiVersion: v1
kind: Service
metadata: {name: db-blue, namespace: shop}
spec:
  selector: {app: db, color: blue}
  ports:
  - {name: tcp-db, port: 5432, appProtocol: tcp}
---
apiVersion: v1
kind: Service
metadata: {name: db-green, namespace: shop}
spec:
  selector: {app: db, color: green}
  ports:
  - {name: tcp-db, port: 5432, appProtocol: tcp}
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: db-split, namespace: shop}
spec:
  service: db
  backends:
  - {service: db-blue, weight: 25}
  - {service: db-green, weight: 75}
`},
	{"access", services + `
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: api, namespace: shop}
spec:
  matches:
  - {name: read, pathRegex: "/api/.*", methods: [GET]}
  - {name: exact, pathRegex: "/status$"}
  - {name: alt, pathRegex: "/(v1|v2)/items"}
  - {name: regex, pathRegex: "/v[0-9]+/x"}
  - name: hdr
    pathRegex: /h
    headers:
    - x-tenant: "acme"
    - x-trace: "abc.*"
    - x-any: ".*"
  - name: badhdr
    pathRegex: /b
    headers:
    - x-id: "[0-9]+"
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  matches:
    ports: [9000]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns, namespace: shop}
spec:
  matches:
    ports: [5353]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-web, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: client, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: api, matches: [read, exact, alt, regex, hdr, badhdr]}
  - {kind: TCPRoute, name: db}
  - {kind: UDPRoute, name: dns}
`},
}

// Edge returns the edge cases as snapshots; each must build without
// errors.
func Edge(t testing.TB) []Case {
	t.Helper()
	var out []Case
	for _, e := range EdgeCases {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, e.Name+".yaml"), []byte(e.YAML), 0o644); err != nil {
			t.Fatal(err)
		}
		c, ds := load(t, "edge-"+e.Name, dir)
		if ds.HasErrors() {
			t.Fatalf("edge case %s: %v", e.Name, ds.Err())
		}
		out = append(out, c)
	}
	return out
}
