package istio_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
	"github.com/causeway-mesh/causeway/adapters/istio"
)

// TestServerSideDryRun sends every object rendered from the example sets
// and the edge cases (with a gateway address, so ServiceEntries and
// DestinationRules are made) to a real kube-apiserver with Istio's own
// CRDs (istio.io/api's kubernetes/customresourcedefinitions.gen.yaml, from
// the module cache).
func TestServerSideDryRun(t *testing.T) {
	cases := map[string][]*unstructured.Unstructured{}
	for _, c := range gatewayapitest.Cases(t) {
		cases[c.Name], _ = istio.Render(c.Snapshot, istio.Options{GatewayAddrs: []string{"192.0.2.10:15443", "gw.example.com:15443"}})
	}
	exports := exportSnapshot(t)
	cases["exports"], _ = istio.Render(exports, istio.Options{GatewayAddrs: []string{"192.0.2.10:15443"}})
	dir := gatewayapitest.ModuleDir(t, gatewayapitest.IstioAPIModule)
	crds := gatewayapitest.Files(t, dir, "kubernetes/customresourcedefinitions.gen.yaml")
	gatewayapitest.DryRun(t, crds, cases)
	// The same CRDs refuse what Istio's schema forbids, so acceptance above
	// means something: an unknown action, a misspelled field.
	t.Run("refused", func(t *testing.T) {
		gatewayapitest.MustReject(t,
			gatewayapi.NewObject("security.istio.io/v1", "AuthorizationPolicy", "bookstore", "bad-action", map[string]any{"action": "PERMIT"}),
			gatewayapi.NewObject("networking.istio.io/v1", "VirtualService", "bookstore", "bad-field", map[string]any{"hosts": []any{"a"}, "htpp": []any{}}),
		)
	})
}
