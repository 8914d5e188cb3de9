package istio_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
	"github.com/causeway-mesh/causeway/adapters/istio"
	"github.com/causeway-mesh/causeway/spec"
)

func TestRender(t *testing.T) {
	t.Parallel()
	cases := map[string]gatewayapitest.Case{}
	for _, c := range gatewayapitest.Edge(t) {
		cases[c.Name] = c
	}
	tests := []struct {
		name  string
		check func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics)
	}{
		{"edge-http-matches", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// Matched split first (every match ORed), then the default
			// split; Istio tries http routes in order, as Causeway does.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "VirtualService", "shop", "web", "spec", "http"), `[
			 {"name":"web-canary.canary","match":[
			   {"name":"books","uri":{"prefix":"/books"},"method":{"regex":"GET|POST"},
			    "headers":{"user-agent":{"regex":".*Mozilla.*"},"x-canary":{"exact":"true"}}},
			   {"name":"exact","uri":{"exact":"/health"}},
			   {"name":"either","uri":{"regex":"^(?:/(a|b)/.*).*"}},
			   {"name":"not-exact","uri":{"exact":"/a//b"}}],
			  "route":[{"destination":{"host":"web-v2.shop.svc.cluster.local"},"weight":100}]},
			 {"name":"web-split","route":[
			   {"destination":{"host":"web-v1.shop.svc.cluster.local"},"weight":90},
			   {"destination":{"host":"web-v2.shop.svc.cluster.local"},"weight":10}]}]`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "VirtualService", "shop", "web", "spec", "tcp"), `[
			 {"match":[{"port":9000}],"route":[
			   {"destination":{"host":"web-v1.shop.svc.cluster.local"},"weight":90},
			   {"destination":{"host":"web-v2.shop.svc.cluster.local"},"weight":10}]}]`)
			gatewayapitest.HasDiag(t, ds, "spec.backends", "Istio proxies no UDP")
		}},
		{"edge-weights", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// 500m : 1 is 1/3 : 2/3; whole percentages must round.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "VirtualService", "shop", "web", "spec", "http"), `[{"name":"web-split","route":[
			   {"destination":{"host":"web-v1.shop.svc.cluster.local"},"weight":33},
			   {"destination":{"host":"web-v2.shop.svc.cluster.local"},"weight":67}]}]`)
			gatewayapitest.HasDiag(t, ds, "spec.backends", "web-v1=0.5->33%")
		}},
		{"edge-weight-zero", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "VirtualService", "shop", "web", "spec", "http"), `[{"name":"web-split","route":[
			   {"destination":{"host":"web-v1.shop.svc.cluster.local"},"weight":0},
			   {"destination":{"host":"web-v2.shop.svc.cluster.local"},"weight":100}]}]`)
		}},
		{"edge-nested", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// Each root gets its own VirtualService; Istio, like Causeway,
			// applies one level: web-v1's split is web-v1's own.
			gatewayapitest.Field(t, objs, "VirtualService", "shop", "web", "spec", "http")
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "VirtualService", "shop", "web-v1", "spec", "http"), `[{"name":"v1-split","route":[
			   {"destination":{"host":"web-v2.shop.svc.cluster.local"},"weight":100}]}]`)
		}},
		{"edge-access", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			from := `[{"source":{"principals":["cluster.local/ns/shop/sa/client"]}}]`
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "AuthorizationPolicy", "shop", "client-web", "spec"), `{"action":"ALLOW","rules":[
			 {"from":`+from+`,"to":[
			   {"operation":{"paths":["/api/*"],"methods":["GET"]}},
			   {"operation":{"paths":["/status"]}},
			   {"operation":{"paths":["/v1/items*","/v2/items*"]}}]},
			 {"from":`+from+`,"to":[{"operation":{"paths":["/h*"]}}],"when":[
			   {"key":"request.headers[x-tenant]","values":["acme"]},
			   {"key":"request.headers[x-trace]","values":["abc*"]}]},
			 {"from":`+from+`,"to":[{"operation":{"ports":["19000"]}}]}]}`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "AuthorizationPolicy", "shop", istio.DenyAllName, "spec"), `{}`)
			gatewayapitest.HasDiag(t, ds, "spec.matches[3].pathRegex", `"/v[0-9]+/x" is a regex none of them expresses`)
			gatewayapitest.HasDiag(t, ds, "spec.matches[5].headers.x-id", `"[0-9]+" is a regex none of them expresses`)
			gatewayapitest.HasDiag(t, ds, "spec.rules[2]", "Istio proxies no UDP")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, ds := istio.Render(cases[tc.name].Snapshot, istio.Options{})
			tc.check(t, objs, ds)
		})
	}
}

func TestRenderExports(t *testing.T) {
	t.Parallel()
	s := gatewayapitest.ExportSnapshot(t)
	t.Run("with gateway", func(t *testing.T) {
		objs, ds := istio.Render(s, istio.Options{GatewayAddrs: []string{"192.0.2.10:15443"}, Cluster: "west"})
		gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "ServiceEntry", "shop", "web-east", "spec"), `{"hosts":["web.shop.svc.east"],"location":"MESH_INTERNAL","resolution":"STATIC",
		  "ports":[{"number":8080,"name":"http","protocol":"HTTP"}],
		  "endpoints":[{"address":"198.51.100.7","ports":{"http":15443}}]}`)
		gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "DestinationRule", "shop", "web-east", "spec"), `{"host":"web.shop.svc.east","trafficPolicy":{"portLevelSettings":[
		  {"port":{"number":8080},"tls":{"mode":"ISTIO_MUTUAL","sni":"8080.web.shop.svc.east.example","subjectAltNames":["spiffe://east.example/ns/causeway-system/sa/causeway-gateway"]}}]}}`)
		gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "ServiceEntry", "shop", "api-west", "spec", "hosts"), `["api.shop.svc.west"]`)
		gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "DestinationRule", "shop", "api-west", "spec", "trafficPolicy"), `{"portLevelSettings":[
		  {"port":{"number":9090},"tls":{"mode":"ISTIO_MUTUAL","sni":"9090.api.shop.svc.cluster.local","subjectAltNames":["spiffe://cluster.local/ns/causeway-system/sa/causeway-gateway"]}}]}`)
		gatewayapitest.HasDiag(t, ds, "spec.ports", "carries no UDP")
	})
	t.Run("without gateway", func(t *testing.T) {
		objs, ds := istio.Render(s, istio.Options{})
		for _, o := range objs {
			if o.GetName() == "api-cluster.local" {
				t.Errorf("export rendered without a gateway address: %s", o.GetKind())
			}
		}
		gatewayapitest.HasDiag(t, ds, "", "pass --gateway-address")
	})
}
