package gatewayapitest_test

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
	"github.com/causeway-mesh/causeway/adapters/istio"
	"github.com/causeway-mesh/causeway/adapters/linkerd"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// The three targets' dry-runs share one apiserver (started lazily by the
// first of them): Gateway API's and Istio's CRDs do not overlap, and the
// Gateway API tests install the standard channel before the experimental
// one, which Linkerd's routes are checked against after.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// TestGatewayAPIDryRun sends every object rendered from the example sets
// and the edge cases (gatewayapitest.Cases) to a real kube-apiserver with
// Gateway API's own CRDs (GatewayAPIModule, from the module cache): first the
// standard channel, which must take every HTTPRoute, then the experimental
// channel for TCPRoute and UDPRoute.
func TestGatewayAPIDryRun(t *testing.T) {
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

// TestIstioDryRun sends every object rendered from the example sets
// and the edge cases (with a gateway address, so ServiceEntries and
// DestinationRules are made) to a real kube-apiserver with Istio's own
// CRDs (istio.io/api's kubernetes/customresourcedefinitions.gen.yaml, from
// the module cache).
func TestIstioDryRun(t *testing.T) {
	cases := map[string][]*unstructured.Unstructured{}
	for _, c := range gatewayapitest.Cases(t) {
		cases[c.Name], _ = istio.Render(c.Snapshot, istio.Options{GatewayAddrs: []string{"192.0.2.10:15443", "gw.example.com:15443"}})
	}
	exports := gatewayapitest.ExportSnapshot(t)
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

// TestLinkerdDryRun sends the rendered Namespaces and Gateway API routes
// (outbound HTTPRoute/TCPRoute with a Service parent, inbound HTTPRoutes
// with a Server parent) to a real kube-apiserver with Gateway API's CRDs.
//
// Linkerd's own CRDs (Server, AuthorizationPolicy, MeshTLSAuthentication)
// are not checked here: Linkerd publishes them only in its Helm charts,
// and the module proxy refuses github.com/linkerd/linkerd2 (403 for every
// version), so there is no pinned, checksummed copy to install. Their shape
// is covered by TestRender instead; the test logs how many were left out.
func TestLinkerdDryRun(t *testing.T) {
	cases := map[string][]*unstructured.Unstructured{}
	skipped := 0
	for _, c := range gatewayapitest.Cases(t) {
		objs, _ := linkerd.Render(c.Snapshot, linkerd.Options{})
		for _, o := range objs {
			switch o.GroupVersionKind().Group {
			case "", "gateway.networking.k8s.io":
				cases[c.Name] = append(cases[c.Name], o)
			default:
				skipped++
			}
		}
	}
	dir := gatewayapitest.ModuleDir(t, gatewayapitest.GatewayAPIModule)
	gatewayapitest.DryRun(t, gatewayapitest.Files(t, dir, "config/crd/experimental/gateway.networking.k8s.io_*.yaml"), cases)
	t.Logf("%d policy.linkerd.io objects not checked against a schema (no Linkerd CRDs from the module proxy)", skipped)
}
