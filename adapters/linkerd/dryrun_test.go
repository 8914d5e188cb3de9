package linkerd_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
	"github.com/causeway-mesh/causeway/adapters/linkerd"
)

// TestServerSideDryRun sends the rendered Namespaces and Gateway API routes
// (outbound HTTPRoute/TCPRoute with a Service parent, inbound HTTPRoutes
// with a Server parent) to a real kube-apiserver with Gateway API's CRDs.
//
// Linkerd's own CRDs (Server, AuthorizationPolicy, MeshTLSAuthentication)
// are not checked here: Linkerd publishes them only in its Helm charts,
// and the module proxy refuses github.com/linkerd/linkerd2 (403 for every
// version), so there is no pinned, checksummed copy to install. Their shape
// is covered by TestRender instead; the test logs how many were left out.
func TestServerSideDryRun(t *testing.T) {
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
