package deploy_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// TestNodeAgentOverlay: `kubectl apply -k deploy/node-agent` is the base
// plus the node agent, and its injector points proxies at the node agent's
// socket with a token, while deploy/base keeps SPIRE's CSI driver.
func TestNodeAgentOverlay(t *testing.T) {
	t.Parallel()
	injectorFlags := []string{"--spiffe-host-path=/run/causeway/sockets", "--spiffe-socket-name=api.sock", "--spiffe-token-audience=causeway"}
	tests := []struct {
		dir       string
		wantAgent bool
	}{
		{"base", false},
		{"node-agent", true},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			t.Parallel()
			docs, err := render(tt.dir)
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			agent := false
			for _, d := range docs {
				switch {
				case d.Obj.GetKind() == "Deployment" && d.Obj.GetName() == "causeway-control-plane":
					args = containerArgs(t, d.Obj)
				case d.Obj.GetKind() == "DaemonSet" && d.Obj.GetName() == "causeway-node-agent":
					agent = true
					a := containerArgs(t, d.Obj)
					// The agent must serve the socket the injector names, and
					// follow, never rotate, the control plane's CA.
					for _, want := range []string{"--socket=/run/causeway/sockets/api.sock", "--attest=tokenreview",
						"--token-audience=causeway", "--ca-secret=causeway-system/causeway-ca", "--ca-lease="} {
						if !slices.Contains(a, want) {
							t.Errorf("node agent args %q lack %s", a, want)
						}
					}
				}
			}
			if agent != tt.wantAgent {
				t.Errorf("node agent DaemonSet rendered = %v, want %v", agent, tt.wantAgent)
			}
			if args == nil {
				t.Fatal("no control plane Deployment rendered")
			}
			for _, f := range injectorFlags {
				if slices.Contains(args, f) != tt.wantAgent {
					t.Errorf("control plane args %q: %s present = %v, want %v", args, f, !tt.wantAgent, tt.wantAgent)
				}
			}
		})
	}
}

func containerArgs(t *testing.T, obj *unstructured.Unstructured) []string {
	t.Helper()
	cs, _, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if err != nil || len(cs) == 0 {
		t.Fatalf("%s %s: no containers: %v", obj.GetKind(), obj.GetName(), err)
	}
	args, _, err := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if err != nil {
		t.Fatalf("%s %s: args: %v", obj.GetKind(), obj.GetName(), err)
	}
	return args
}

// TestNodeAgentRBAC: the node agent may check tokens and read the CA
// Secret, and nothing more: it cannot rewrite the CA, read another Secret,
// or take the rotation Lease.
func TestNodeAgentRBAC(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	docs, err := kubetest.ReadFiles("base/namespace.yaml", "node-agent/node-agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := a.Apply(ctx, d.Obj, false); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("%s: %v", d, err)
		}
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const sa = "system:serviceaccount:causeway-node:causeway-node-agent"
	cases := []struct {
		name                      string
		verb, group, resource, ns string
		named                     string
		want                      bool
	}{
		{"create tokenreviews", "create", "authentication.k8s.io", "tokenreviews", "", "", true},
		{"get CA secret", "get", "", "secrets", "causeway-system", "causeway-ca", true},
		{"update CA secret", "update", "", "secrets", "causeway-system", "causeway-ca", false},
		{"create secrets", "create", "", "secrets", "causeway-system", "", false},
		{"get another secret", "get", "", "secrets", "causeway-system", "app-credentials", false},
		{"list secrets", "list", "", "secrets", "causeway-system", "", false},
		{"update CA lease", "update", "coordination.k8s.io", "leases", "causeway-system", "causeway-ca", false},
		{"create tokens", "create", "", "serviceaccounts/token", "causeway-node", "causeway-node-agent", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resource, sub, _ := strings.Cut(c.resource, "/")
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:causeway-node", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: c.verb, Group: c.group, Resource: resource, Subresource: sub, Namespace: c.ns, Name: c.named,
				},
			}}
			got, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != c.want {
				t.Errorf("%s may %s %s: allowed=%v, want %v (%s)", sa, c.verb, c.resource, got.Status.Allowed, c.want, got.Status.Reason)
			}
		})
	}
}
