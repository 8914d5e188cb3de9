package deploy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// rendered is one kustomization's objects, indexed by "Kind ns/name".
type rendered map[string]kubetest.Doc

func renderIndex(t *testing.T, dir string) rendered {
	t.Helper()
	docs, err := render(dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := rendered{}
	for _, d := range docs {
		out[id(d)] = d
	}
	return out
}

func (r rendered) has(kind, ns, name string) bool {
	_, ok := r[kind+" "+ns+"/"+name]
	return ok
}

func into[T any](t *testing.T, d kubetest.Doc) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, &v); err != nil {
		t.Fatalf("%s: %v", d, err)
	}
	return &v
}

// podSpecs returns the pod template of every Deployment and DaemonSet.
func (r rendered) podSpecs(t *testing.T) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for k, d := range r {
		switch d.Obj.GetKind() {
		case "Deployment":
			out[k] = into[appsv1.Deployment](t, d).Spec.Template.Spec
		case "DaemonSet":
			out[k] = into[appsv1.DaemonSet](t, d).Spec.Template.Spec
		}
	}
	return out
}

// TestIdentityStories: each kustomization is one identity story. base: the
// node agent serves the Workload API on a hostPath socket, and every SPIFFE
// socket mounted is that one (no CSI driver); spire: no node agent, no
// hostPath, every socket through SPIRE's CSI driver.
func TestIdentityStories(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dir       string
		wantAgent bool
		wantVol   string // the one kind of SPIFFE socket volume: hostPath or csi
	}{
		{"base", true, "hostPath"},
		{"spire", false, "csi"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			t.Parallel()
			r := renderIndex(t, tt.dir)
			if got := r.has("DaemonSet", "causeway-node", "causeway-node-agent"); got != tt.wantAgent {
				t.Errorf("node agent DaemonSet rendered = %v, want %v", got, tt.wantAgent)
			}
			mounts := 0
			for name, spec := range r.podSpecs(t) {
				for _, v := range spec.Volumes {
					switch {
					case v.HostPath != nil && v.HostPath.Path == "/run/causeway/sockets":
						mounts++
						if tt.wantVol != "hostPath" {
							t.Errorf("%s mounts the node agent's socket directory", name)
						}
					case v.CSI != nil:
						mounts++
						if tt.wantVol != "csi" || v.CSI.Driver != "csi.spiffe.io" {
							t.Errorf("%s mounts CSI driver %s", name, v.CSI.Driver)
						}
					case v.HostPath != nil:
						t.Errorf("%s mounts host path %s", name, v.HostPath.Path)
					}
				}
			}
			// base: node agent + gateway; spire: control plane + gateway.
			if mounts != 2 {
				t.Errorf("%d SPIFFE socket volumes, want 2", mounts)
			}
		})
	}
}

// TestReferencesResolve: within each kustomization, every ServiceAccount,
// ConfigMap key a pod names, and every Role and subject a binding names, is
// rendered too, so an overlay that removes an object removes its users as well.
func TestReferencesResolve(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			r := renderIndex(t, dir)
			for name, spec := range r.podSpecs(t) {
				ns := strings.SplitN(strings.SplitN(name, " ", 2)[1], "/", 2)[0]
				if sa := spec.ServiceAccountName; sa != "" && !r.has("ServiceAccount", ns, sa) {
					t.Errorf("%s: ServiceAccount %s/%s is not rendered", name, ns, sa)
				}
				for _, c := range spec.Containers {
					for _, e := range c.Env {
						if ref := e.ValueFrom; ref != nil && ref.ConfigMapKeyRef != nil {
							cm := r[id2("ConfigMap", ns, ref.ConfigMapKeyRef.Name)]
							if cm.Obj == nil {
								t.Errorf("%s: env %s: ConfigMap %s/%s is not rendered", name, e.Name, ns, ref.ConfigMapKeyRef.Name)
							} else if _, ok := into[corev1.ConfigMap](t, cm).Data[ref.ConfigMapKeyRef.Key]; !ok {
								t.Errorf("%s: env %s: ConfigMap %s/%s has no key %s", name, e.Name, ns, ref.ConfigMapKeyRef.Name, ref.ConfigMapKeyRef.Key)
							}
						}
					}
				}
			}
			for k, d := range r {
				var ref rbacv1.RoleRef
				var subjects []rbacv1.Subject
				switch d.Obj.GetKind() {
				case "RoleBinding":
					b := into[rbacv1.RoleBinding](t, d)
					ref, subjects = b.RoleRef, b.Subjects
				case "ClusterRoleBinding":
					b := into[rbacv1.ClusterRoleBinding](t, d)
					ref, subjects = b.RoleRef, b.Subjects
				default:
					continue
				}
				ns := d.Obj.GetNamespace()
				if ref.Kind == "ClusterRole" {
					ns = ""
				}
				if !r.has(ref.Kind, ns, ref.Name) {
					t.Errorf("%s: %s %s is not rendered", k, ref.Kind, ref.Name)
				}
				for _, s := range subjects {
					if s.Kind == "ServiceAccount" && !r.has("ServiceAccount", s.Namespace, s.Name) {
						t.Errorf("%s: subject ServiceAccount %s/%s is not rendered", k, s.Namespace, s.Name)
					}
				}
			}
		})
	}
}

func id2(kind, ns, name string) string { return kind + " " + ns + "/" + name }

// TestNodeAgentRBAC: the node agent may check tokens, read the CA Secret
// and the federation Secret, and nothing more: it cannot rewrite either,
// read another Secret, or take the rotation Lease.
func TestNodeAgentRBAC(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	docs, err := kubetest.ReadFiles("base/namespace.yaml", "base/node-agent.yaml")
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
		{"get federation secret", "get", "", "secrets", "causeway-system", "causeway-federation", true},
		{"update CA secret", "update", "", "secrets", "causeway-system", "causeway-ca", false},
		{"update federation secret", "update", "", "secrets", "causeway-system", "causeway-federation", false},
		{"watch federation secret", "watch", "", "secrets", "causeway-system", "causeway-federation", false},
		{"get same-named federation secret elsewhere", "get", "", "secrets", "causeway-node", "causeway-federation", false},
		{"create secrets", "create", "", "secrets", "causeway-system", "", false},
		{"get another secret", "get", "", "secrets", "causeway-system", "app-credentials", false},
		{"list secrets", "list", "", "secrets", "causeway-system", "", false},
		{"update CA lease", "update", "coordination.k8s.io", "leases", "causeway-system", "causeway-ca", false},
		{"create tokens", "create", "", "serviceaccounts/token", "causeway-node", "causeway-node-agent", false},
	}
	var allowed []authorizationv1.ResourceAttributes
	for _, c := range cases {
		if c.want {
			resource, sub, _ := strings.Cut(c.resource, "/")
			allowed = append(allowed, authorizationv1.ResourceAttributes{Verb: c.verb, Group: c.group, Resource: resource, Subresource: sub, Namespace: c.ns, Name: c.named})
		}
	}
	kubetest.RBACSettled(ctx, t, kc, sa, []string{"system:serviceaccounts", "system:serviceaccounts:causeway-node", "system:authenticated"}, allowed)
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
