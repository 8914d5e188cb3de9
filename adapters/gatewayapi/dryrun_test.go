package gatewayapi_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
)

// TestServerSideDryRun sends every object rendered from the example sets
// and the edge cases (gatewayapitest.Cases) to a real kube-apiserver with Gateway API's own CRDs
// (gatewayapitest.GatewayAPIModule, from the module cache): first the
// standard channel, which must take every HTTPRoute, then the experimental
// channel for TCPRoute and UDPRoute.
func TestServerSideDryRun(t *testing.T) {
	cases := map[string][]*unstructured.Unstructured{}
	for _, c := range gatewayapitest.Cases(t) {
		cases[c.Name], _ = gatewayapi.Render(c.Snapshot, gatewayapi.Options{})
	}
	dir := gatewayapitest.ModuleDir(t, gatewayapitest.GatewayAPIModule)
	standard := map[string][]*unstructured.Unstructured{}
	for name, objs := range cases {
		for _, o := range objs {
			if o.GetAPIVersion() == "gateway.networking.k8s.io/v1" {
				standard[name] = append(standard[name], o)
			}
		}
	}
	t.Run("standard", func(t *testing.T) {
		gatewayapitest.DryRun(t, gatewayapitest.Files(t, dir, "config/crd/standard/*.yaml"), standard)
	})
	t.Run("experimental", func(t *testing.T) {
		gatewayapitest.DryRun(t, gatewayapitest.Files(t, dir, "config/crd/experimental/gateway.networking.k8s.io_*.yaml"), cases)
	})
	// The same CRDs refuse what Gateway API forbids: a Service backendRef
	// without a port (a CEL rule), a weight above the maximum, an Exact
	// path that is not absolute, and an unknown field.
	t.Run("refused", func(t *testing.T) {
		bad := func(name string, rule map[string]any) *unstructured.Unstructured {
			return gatewayapi.NewObject("gateway.networking.k8s.io/v1", "HTTPRoute", "bookstore", name, map[string]any{
				"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "web", "port": int64(80)}},
				"rules":      []any{rule},
			})
		}
		gatewayapitest.MustReject(t,
			bad("no-port", map[string]any{"backendRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "web"}}}),
			bad("weight", map[string]any{"backendRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "web", "port": int64(80), "weight": int64(gatewayapi.MaxWeight + 1)}}}),
			bad("relative-exact", map[string]any{"matches": []any{map[string]any{"path": map[string]any{"type": "Exact", "value": "books"}}}}),
			bad("unknown-field", map[string]any{"timeoutz": "1s"}),
		)
	})
}
