package deploy_test

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/causeway-mesh/causeway/deploy"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// manifests lists every YAML file under deploy/ except kustomizations.
func manifests(t *testing.T) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(deploy.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") && path.Base(p) != "kustomization.yaml" {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kustomizations are the directories `kubectl apply -k` takes.
var kustomizations = []string{"crds", "base", "spire", "examples/bookstore", "examples/cluster-east"}

// render builds one kustomization with kustomize's own library (krusty, what
// `kubectl kustomize` runs) and returns its objects.
func render(dir string) ([]kubetest.Doc, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, err
	}
	y, err := m.AsYaml()
	if err != nil {
		return nil, err
	}
	return kubetest.Parse("kustomize:"+dir, y)
}

// TestKustomizations renders every kustomization and checks that nothing
// under its directory is left out of it: each manifest file's objects all
// appear in the rendered output.
func TestKustomizations(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			docs, err := render(dir)
			if err != nil {
				t.Fatalf("kustomize build %s: %v", dir, err)
			}
			rendered := map[string]bool{}
			for _, d := range docs {
				rendered[id(d)] = true
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			for _, f := range files {
				if filepath.Base(f) == "kustomization.yaml" {
					continue
				}
				fdocs, err := kubetest.ReadFiles(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range fdocs {
					if localConfig(d) {
						if rendered[id(d)] {
							t.Errorf("%s is local-config but kustomize build %s emits it", d, dir)
						}
						continue
					}
					if !rendered[id(d)] {
						t.Errorf("%s is not in the output of kustomize build %s", d, dir)
					}
				}
			}
			t.Logf("kustomize build %s: %d objects", dir, len(docs))
		})
	}
}

// localConfig reports kustomize's local-config annotation: an input to
// the build (a replacement's source), never applied.
func localConfig(d kubetest.Doc) bool {
	return d.Obj.GetAnnotations()["config.kubernetes.io/local-config"] == "true"
}

func id(d kubetest.Doc) string {
	return d.Obj.GetKind() + " " + d.Obj.GetNamespace() + "/" + d.Obj.GetName()
}

// TestServerSideDryRun installs the CRDs and namespaces for real, then sends
// every object of every manifest under deploy/ to the apiserver with
// server-side dry-run: schema validation, defaulting and admission all run,
// nothing is stored. Any rejection fails the object's subtest.
func TestServerSideDryRun(t *testing.T) {
	cfg := kubetest.Config(t)
	// Warnings (Pod Security violations in a Deployment's template, a
	// deprecated API) are failures too: kubectl would print them.
	warns := &warnings{}
	cfg.WarningHandler = warns
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	files := manifests(t)
	start := time.Now()
	var crds []string
	for _, f := range files {
		if strings.HasPrefix(f, "crds/") {
			crds = append(crds, f)
		}
	}
	if err := kubetest.InstallCRDs(ctx, cfg, crds...); err != nil {
		t.Fatal(err)
	}
	t.Logf("installed %d CRD files in %v", len(crds), time.Since(start).Round(time.Millisecond))
	docs, err := kubetest.ReadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	docs = slices.DeleteFunc(docs, localConfig)
	// The local-mode example is ordinary Kubernetes, SMI and causeway.dev
	// YAML: the same folder must apply to a cluster (DESIGN §8).
	example, err := filepath.Glob(filepath.Join("..", "examples", "bookstore", "*.yaml"))
	if err != nil || len(example) == 0 {
		t.Fatalf("examples/bookstore: %v (%d files)", err, len(example))
	}
	exDocs, err := kubetest.ReadFiles(example...)
	if err != nil {
		t.Fatal(err)
	}
	// Each set is checked with its own Namespaces in place: an overlay may
	// give a namespace another Pod Security level (deploy/spire makes
	// causeway-gateway restricted), and its objects must pass under it.
	sets := []struct {
		name string
		docs []kubetest.Doc
	}{{"files", append(docs, exDocs...)}}
	// And what `kubectl apply -k` would send, which may differ from the files
	// (kustomize transforms them).
	for _, dir := range kustomizations {
		r, err := render(dir)
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		sets = append(sets, struct {
			name string
			docs []kubetest.Doc
		}{"kustomize " + dir, r})
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	total := 0
	for _, set := range sets {
		// Namespaced objects can only be dry-run into a namespace that exists.
		for _, d := range set.docs {
			if d.Obj.GetKind() == "Namespace" {
				if _, err := a.Apply(ctx, d.Obj, false); err != nil {
					t.Fatalf("%s: %s: %v", set.name, d, err)
				}
			}
		}
		for _, d := range set.docs {
			kinds[d.Obj.GetKind()]++
			total++
			t.Run(set.name+"/"+d.String(), func(t *testing.T) {
				warns.take()
				got, err := a.Apply(ctx, d.Obj, true)
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				for _, w := range warns.take() {
					t.Errorf("warning: %s", w)
				}
				// Dry-run still answers with the object as it would be stored.
				if got.GetName() != d.Obj.GetName() {
					t.Errorf("dry-run answered %q, want %q", got.GetName(), d.Obj.GetName())
				}
			})
		}
	}
	for _, want := range []string{"CustomResourceDefinition", "Namespace", "Deployment", "Service", "ServiceAccount",
		"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "MutatingWebhookConfiguration", "DaemonSet", "ConfigMap",
		"TrafficSplit", "TrafficTarget", "HTTPRouteGroup", "MeshConfig"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among the manifests", want)
		}
	}
	t.Logf("dry-run of %d objects from %d files and %d kustomizations", total, len(files), len(kustomizations))
}

// warnings collects the apiserver's warning headers.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns the warnings so far and forgets them.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// TestDryRunRejects shows that the dry-run above can fail: each object is
// wrong in a way the apiserver (not a client-side check) catches.
func TestDryRunRejects(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kubetest.InstallCRDs(ctx, cfg, "crds/split.smi-spec.io.yaml", "crds/causeway.dev.yaml"); err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, yaml, want string }{
		{"apiextensions v1beta1 CRD (smi-sdk-go's)", `
apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata: {name: trafficsplits.split.smi-spec.io}
spec: {group: split.smi-spec.io, version: v1alpha1, names: {kind: TrafficSplit, plural: trafficsplits}}`, "apiextensions.k8s.io/v1beta1"},
		{"unknown field in a TrafficSplit", `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: s, namespace: default}
spec: {service: a, backends: [{service: b, weight: 1}], bakends: []}`, "bakends"},
		{"wrong type in a TrafficSplit", `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: default}
spec: {service: [a]}`, "spec.service"},
		{"MeshConfig mode outside the enum", `
apiVersion: causeway.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {mode: open}`, "spec.mode"},
		{"Workload with a service but no port", `
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: w, namespace: default}
spec: {serviceAccount: w, service: web}`, "service and port go together"},
		{"ClusterLink of neither shape", `
apiVersion: causeway.dev/v1alpha1
kind: ClusterLink
metadata: {name: l, namespace: default}
spec: {cluster: east}`, "give clusters (local mode) or cluster and trustDomain"},
		{"Deployment without containers", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: default}
spec: {selector: {matchLabels: {a: b}}, template: {metadata: {labels: {a: b}}, spec: {containers: []}}}`, "containers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			docs, err := kubetest.Parse(c.name, []byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Apply(ctx, docs[0].Obj, true)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("dry-run error = %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

// TestDryRunWarnings shows that warnings reach the check above: a pod
// template that breaks the namespace's restricted Pod Security level is
// admitted with a warning, which TestServerSideDryRun would report.
func TestDryRunWarnings(t *testing.T) {
	cfg := kubetest.Config(t)
	warns := &warnings{}
	cfg.WarningHandler = warns
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kubetest.ReadFiles("base/namespace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, ns[0].Obj, false); err != nil {
		t.Fatal(err)
	}
	docs, err := kubetest.Parse("root-deployment", []byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: runs-as-root, namespace: causeway-system}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: example.invalid/c}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	warns.take()
	if _, err := a.Apply(ctx, docs[0].Obj, true); err != nil {
		t.Fatal(err)
	}
	got := warns.take()
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "PodSecurity") {
		t.Errorf("warnings = %q, want a PodSecurity warning", got)
	}
}

// TestRBAC applies the control plane's RBAC for real and asks the apiserver
// (SubjectAccessReview) what its ServiceAccount may do: everything the
// watcher needs, and nothing beyond (no spec writes, no secret but the CA's, no other
// Lease).
func TestRBAC(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	docs, err := kubetest.ReadFiles("base/namespace.yaml", "base/rbac.yaml", "base/control-plane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := a.Apply(ctx, d.Obj, false); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const sa = "system:serviceaccount:causeway-system:causeway-control-plane"
	cases := []struct {
		name                                          string
		verb, group, resource, subresource, ns, named string
		want                                          bool
	}{
		{"list services", "list", "", "services", "", "", "", true},
		{"watch endpointslices", "watch", "discovery.k8s.io", "endpointslices", "", "", "", true},
		{"watch pods", "watch", "", "pods", "", "", "", true},
		{"list deployments", "list", "apps", "deployments", "", "", "", true},
		{"watch trafficsplits", "watch", "split.smi-spec.io", "trafficsplits", "", "", "", true},
		{"list traffictargets", "list", "access.smi-spec.io", "traffictargets", "", "", "", true},
		{"list udproutes", "list", "specs.smi-spec.io", "udproutes", "", "", "", true},
		{"get serviceexports", "get", "multicluster.x-k8s.io", "serviceexports", "", "bookstore", "bookstore", true},
		{"list serviceexports", "list", "multicluster.x-k8s.io", "serviceexports", "", "", "", true},
		{"watch serviceexports", "watch", "multicluster.x-k8s.io", "serviceexports", "", "", "", true},
		{"patch trafficsplit status", "patch", "split.smi-spec.io", "trafficsplits", "status", "bookstore", "", true},
		{"create events", "create", "", "events", "", "bookstore", "", true},
		{"create tokenreviews", "create", "authentication.k8s.io", "tokenreviews", "", "", "", true},
		{"update own lease", "update", "coordination.k8s.io", "leases", "", "causeway-system", "causeway-control-plane", true},
		{"update CA rotation lease", "update", "coordination.k8s.io", "leases", "", "causeway-system", "causeway-ca", true},
		{"create lease", "create", "coordination.k8s.io", "leases", "", "causeway-system", "", true},
		{"patch own webhook", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "causeway-sidecar-injector", true},
		{"get CA secret", "get", "", "secrets", "", "causeway-system", "causeway-ca", true},
		{"update CA secret", "update", "", "secrets", "", "causeway-system", "causeway-ca", true},
		{"create CA secret", "create", "", "secrets", "", "causeway-system", "", true},
		{"get federation secret", "get", "", "secrets", "", "causeway-system", "causeway-federation", true},
		{"update federation secret", "update", "", "secrets", "", "causeway-system", "causeway-federation", true},
		// Beyond what it needs:
		{"update trafficsplit spec", "update", "split.smi-spec.io", "trafficsplits", "", "bookstore", "", false},
		{"delete traffictargets", "delete", "access.smi-spec.io", "traffictargets", "", "bookstore", "", false},
		{"list secrets", "list", "", "secrets", "", "", "", false},
		{"get another secret", "get", "", "secrets", "", "causeway-system", "app-credentials", false},
		{"update another secret", "update", "", "secrets", "", "causeway-system", "default-token", false},
		{"list secrets in own namespace", "list", "", "secrets", "", "causeway-system", "", false},
		{"watch CA secret", "watch", "", "secrets", "", "causeway-system", "causeway-ca", false},
		{"delete CA secret", "delete", "", "secrets", "", "causeway-system", "causeway-ca", false},
		{"patch CA secret", "patch", "", "secrets", "", "causeway-system", "causeway-ca", false},
		{"delete federation secret", "delete", "", "secrets", "", "causeway-system", "causeway-federation", false},
		{"watch federation secret", "watch", "", "secrets", "", "causeway-system", "causeway-federation", false},
		{"get same-named federation secret elsewhere", "get", "", "secrets", "", "bookstore", "causeway-federation", false},
		{"get same-named secret elsewhere", "get", "", "secrets", "", "bookstore", "causeway-ca", false},
		{"create secrets elsewhere", "create", "", "secrets", "", "bookstore", "", false},
		{"update another lease", "update", "coordination.k8s.io", "leases", "", "causeway-system", "kube-scheduler", false},
		{"create lease elsewhere", "create", "coordination.k8s.io", "leases", "", "kube-system", "", false},
		{"patch another webhook", "patch", "admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", "", "other", false},
		{"create pods", "create", "", "pods", "", "bookstore", "", false},
		{"update services", "update", "", "services", "", "bookstore", "", false},
		{"create serviceexports", "create", "multicluster.x-k8s.io", "serviceexports", "", "bookstore", "", false},
		{"delete serviceexports", "delete", "multicluster.x-k8s.io", "serviceexports", "", "bookstore", "", false},
		{"patch serviceexport status", "patch", "multicluster.x-k8s.io", "serviceexports", "status", "bookstore", "", false},
	}
	var allowed []authorizationv1.ResourceAttributes
	for _, c := range cases {
		if c.want {
			allowed = append(allowed, authorizationv1.ResourceAttributes{Verb: c.verb, Group: c.group, Resource: c.resource,
				Subresource: c.subresource, Namespace: c.ns, Name: c.named})
		}
	}
	kubetest.RBACSettled(ctx, t, kc, sa, []string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"}, allowed)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.subresource,
					Namespace: c.ns, Name: c.named,
				},
			}}
			got, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != c.want {
				t.Errorf("%s may %s %s/%s (%s): allowed=%v, want %v (%s)", sa, c.verb, c.group, c.resource, c.subresource, got.Status.Allowed, c.want, got.Status.Reason)
			}
		})
	}

	// The CA SecretStore works with exactly these rules: as the control
	// plane's ServiceAccount (impersonated), it creates and reloads its CA
	// Secret, and cannot use a Secret of another name.
	asSA := rest.CopyConfig(cfg)
	asSA.Impersonate = rest.ImpersonationConfig{UserName: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"}}
	saClient, err := kubernetes.NewForConfig(asSA)
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	openCA := func(name string) (*ca.CA, error) {
		store, err := ca.NewSecretStore(saClient.CoreV1(), "causeway-system", name)
		if err != nil {
			return nil, err
		}
		return ca.New(ctx, ca.Options{TrustDomain: td, Store: store, Logger: slog.New(slog.DiscardHandler)})
	}
	var first *ca.CA
	for _, c := range []struct {
		name, secret string
		allowed      bool
	}{
		{"CA secret: create", "causeway-ca", true},
		{"CA secret: reload", "causeway-ca", true},
		{"CA secret: rotate", "causeway-ca", true},
		{"another secret", "other-ca", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := openCA(c.secret)
			if !c.allowed {
				if !apierrors.IsForbidden(err) {
					t.Fatalf("SecretStore on %s = %v, want Forbidden", c.secret, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if first == nil {
				first = got
				return
			}
			if got.ActiveID() != first.ActiveID() {
				t.Errorf("reloaded CA is active %s, want %s", got.ActiveID(), first.ActiveID())
			}
			if strings.HasSuffix(c.name, "rotate") {
				if err := got.Rotate(ctx); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
