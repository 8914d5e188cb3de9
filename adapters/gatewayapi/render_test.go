package gatewayapi_test

import (
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
	"github.com/causeway-mesh/causeway/spec"
)

func TestRender(t *testing.T) {
	t.Parallel()
	cases := map[string]*spec.Snapshot{}
	for _, c := range gatewayapitest.Edge(t) {
		cases[c.Name] = c.Snapshot
	}
	backend := func(name string, port, weight int) string {
		return `{"group":"","kind":"Service","name":"` + name + `","port":` + itoa(port) + `,"weight":` + itoa(weight) + `}`
	}
	tests := []struct {
		name  string
		opts  gatewayapi.Options
		check func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics)
	}{
		{"edge-weights", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// "500m" and "1": exactly 1 to 2.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "web", "spec"), `{
			  "parentRefs":[{"group":"","kind":"Service","name":"web","port":8080}],
			  "rules":[{"backendRefs":[`+backend("web-v1", 8080, 1)+`,`+backend("web-v2", 8080, 2)+`]}]}`)
		}},
		{"edge-weight-zero", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "web", "spec", "rules"),
				`[{"backendRefs":[`+backend("web-v1", 8080, 0)+`,`+backend("web-v2", 8080, 1)+`]}]`)
		}},
		{"edge-weight-rounded", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "web", "spec", "rules"),
				`[{"backendRefs":[`+backend("web-v1", 8080, 1)+`,`+backend("web-v2", 8080, 1000000)+`]}]`)
			gatewayapitest.HasDiag(t, ds, "spec.backends", "weights rounded")
			if n := len(ds); n != 1 {
				t.Errorf("%d diagnostics, want the rounding once (not once per port): %v", n, ds)
			}
		}},
		{"edge-http-matches", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// Matches (one per method, headers ANDed) to the matched split,
			// then a rule without matches to the default split.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "web", "spec", "rules"), `[
			  {"matches":[
			    {"method":"GET","path":{"type":"RegularExpression","value":"^/books.*"},"headers":[
			      {"name":"user-agent","type":"RegularExpression","value":"^(?:.*Mozilla.*)$"},
			      {"name":"x-canary","type":"Exact","value":"true"}]},
			    {"method":"POST","path":{"type":"RegularExpression","value":"^/books.*"},"headers":[
			      {"name":"user-agent","type":"RegularExpression","value":"^(?:.*Mozilla.*)$"},
			      {"name":"x-canary","type":"Exact","value":"true"}]},
			    {"path":{"type":"Exact","value":"/health"}},
			    {"path":{"type":"RegularExpression","value":"^(?:/(a|b)/.*).*"}},
			    {"path":{"type":"RegularExpression","value":"^(?:/a//b$).*"}}],
			   "backendRefs":[`+backend("web-v2", 8080, 1)+`]},
			  {"backendRefs":[`+backend("web-v1", 8080, 9)+`,`+backend("web-v2", 8080, 1)+`]}]`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "TCPRoute", "shop", "web-9000", "spec", "parentRefs"), `[{"group":"","kind":"Service","name":"web","port":9000}]`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "UDPRoute", "shop", "web-5353", "spec", "rules"),
				`[{"backendRefs":[`+backend("web-v1", 5353, 9)+`,`+backend("web-v2", 5353, 1)+`]}]`)
		}},
		{"edge-http-matches", gatewayapi.Options{Standard: true}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			for _, o := range objs {
				if o.GetAPIVersion() != "gateway.networking.k8s.io/v1" {
					t.Errorf("%s rendered on the standard channel", o.GetKind())
				}
			}
			gatewayapitest.HasDiag(t, ds, "spec.backends", "TCPRoute is in Gateway API's experimental channel only")
			gatewayapitest.HasDiag(t, ds, "spec.backends", "UDPRoute is in Gateway API's experimental channel only")
		}},
		{"edge-nested", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// Each root has its own route; a nested split is its root's.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "web", "spec", "rules"),
				`[{"backendRefs":[`+backend("web-v1", 8080, 1)+`,`+backend("web-v2", 8080, 1)+`]}]`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "web-v1", "spec", "rules"),
				`[{"backendRefs":[`+backend("web-v2", 8080, 1)+`]}]`)
		}},
		{"edge-tcp", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			for _, o := range objs {
				if o.GetKind() == "HTTPRoute" {
					t.Errorf("HTTPRoute %s for a TCP-only service", o.GetName())
				}
			}
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "TCPRoute", "shop", "db-5432", "spec", "rules"),
				`[{"backendRefs":[`+backend("db-blue", 5432, 1)+`,`+backend("db-green", 5432, 3)+`]}]`)
		}},
		{"edge-access", gatewayapi.Options{}, func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			if len(objs) != 0 {
				t.Errorf("%d objects for access policy alone; GAMMA has none", len(objs))
			}
			gatewayapitest.HasDiag(t, ds, "", "no standard access policy")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, ds := gatewayapi.Render(cases[tc.name], tc.opts)
			tc.check(t, objs, ds)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
