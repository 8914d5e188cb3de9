package kube_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/kube"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/spec"
)

// exported reports whether the snapshot holds ns/name with Export as want.
func exported(s *spec.Snapshot, ns, name string, want bool) bool {
	svc := service(s, ns, name)
	return svc != nil && svc.Export == want
}

// TestServiceExportFollowsCluster runs a Watcher, as the control plane's
// ServiceAccount (deploy/base RBAC), on the real apiserver with deploy/crds'
// ServiceExport CRD: a Service created with client-go is not exported until
// a ServiceExport of its name is created, and stops being exported when the
// ServiceExport is deleted. Each step logs how long the snapshot took.
func TestServiceExportFollowsCluster(t *testing.T) {
	admin, cp := cluster(t)
	ctx := context.Background()
	const ns = "export-it"
	kc := kubernetes.NewForConfigOrDie(admin)
	exports := dynamic.NewForConfigOrDie(admin).Resource(kube.ServiceExports.GVR).Namespace(ns)
	// The apiserver outlives this test (go test -count runs it again on the
	// same one); a namespace cannot be deleted without the controllers that
	// finalize it, so an earlier run's is reused, and the objects the steps
	// create are removed at the end.
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exports.Delete(ctx, "orders", metav1.DeleteOptions{})
		_ = kc.CoreV1().Services(ns).Delete(ctx, "orders", metav1.DeleteOptions{})
	})
	w, _ := startWatcher(t, cp, kube.Election{})
	svcExport := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kube.GroupMCS + "/v1alpha1", "kind": "ServiceExport",
		"metadata": map[string]any{"name": "orders", "namespace": ns},
	}}
	steps := []struct {
		name   string
		change func(t *testing.T)
		want   bool
	}{
		{"a Service alone is not exported", func(t *testing.T) {
			svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "orders", Namespace: ns},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
			if _, err := kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"a ServiceExport of its name exports it", func(t *testing.T) {
			if _, err := exports.Create(ctx, svcExport, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"deleting the ServiceExport withdraws it", func(t *testing.T) {
			if err := exports.Delete(ctx, "orders", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			s.change(t)
			written := time.Now()
			waitSnapshot(t, w, "orders with Export="+map[bool]string{true: "true", false: "false"}[s.want], func(snap *spec.Snapshot) bool {
				return exported(snap, ns, "orders", s.want)
			})
			t.Logf("write took %v; snapshot shows Export=%v %v after the write", written.Sub(start).Round(time.Millisecond), s.want, time.Since(written).Round(time.Millisecond))
		}) {
			return
		}
	}
}

// TestWithoutMCS runs the Watcher on fake clients whose discovery does not
// serve multicluster.x-k8s.io, as on a cluster without the MCS CRD: the
// Watcher still syncs the other kinds and publishes, and the annotation
// still exports.
func TestWithoutMCS(t *testing.T) {
	kc, dc := fakeAPI(t, fakeWorkloads+`
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop, annotations: {causeway.dev/export: "true"}}
spec: {ports: [{name: http, port: 8080}]}
`)
	fd := kc.Discovery().(*fakediscovery.FakeDiscovery)
	kept := fd.Resources[:0]
	for _, l := range fd.Resources {
		if l.GroupVersion != kube.ServiceExports.GVR.GroupVersion().String() {
			kept = append(kept, l)
		}
	}
	if len(kept) == len(fd.Resources) {
		t.Fatal("the fake discovery never listed ServiceExports; the test would prove nothing")
	}
	fd.Resources = kept
	w, err := kube.NewWatcher(kube.WatchOptions{Kube: kc, Dynamic: dc, Translate: pipeline, Settle: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	cases := []struct {
		name       string
		ns, svc    string
		wantExport bool
	}{
		{"annotated Service exported", "shop", "orders", true},
		{"plain Service not exported", "shop", "web", false},
	}
	s := waitSnapshot(t, w, "orders", func(s *spec.Snapshot) bool { return service(s, "shop", "orders") != nil })
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !exported(s, c.ns, c.svc, c.wantExport) {
				t.Errorf("%s/%s: Export != %v in %+v", c.ns, c.svc, c.wantExport, service(s, c.ns, c.svc))
			}
		})
	}
}

// gadgetCRD is a kind no other test installs, so its absence at the
// Watcher's start is certain; it stands for a CRD (MCS's ServiceExport)
// installed while the control plane runs. GROUP is new for each run of the
// test (go test -count runs it again on the same apiserver, where the CRD
// of an earlier run is still installed).
const gadgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.GROUP}
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// gadgetRuns numbers the runs of TestKindInstalledLater in this process.
var gadgetRuns atomic.Int64

// TestKindInstalledLater starts a Watcher that asks for a kind whose CRD
// does not exist yet, installs the CRD, and checks that the Watcher starts
// watching it within a few Rediscover periods and that an object of that
// kind then reaches Translate.
func TestKindInstalledLater(t *testing.T) {
	admin, _ := cluster(t)
	group := fmt.Sprintf("run%d.rediscover.causeway.test", gadgetRuns.Add(1))
	gadgets := kube.Resource{Kind: "Gadget", GVR: schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}, Namespaced: true}
	var seen atomic.Int64 // Gadgets in the latest translation
	w, err := kube.NewWatcher(kube.WatchOptions{
		Config: admin, Resources: []kube.Resource{kube.Services, gadgets}, Settle: 20 * time.Millisecond, Rediscover: 100 * time.Millisecond,
		Translate: func(objs []adapters.Object) (*spec.Snapshot, spec.Diagnostics) {
			n := 0
			for _, o := range objs {
				if o.Kind == "Gadget" {
					n++
				}
			}
			seen.Store(int64(n))
			// Only the non-Gadget objects go to the pipeline, which does
			// not know the kind.
			return pipeline(slices.DeleteFunc(objs, func(o adapters.Object) bool { return o.Kind == "Gadget" }))
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, 30*time.Second, "first translation", w.Synced)
	kinds := func(want ...string) func() bool {
		return func() bool { return slices.Equal(w.Kinds(), want) }
	}
	steps := []struct {
		name   string
		change func(t *testing.T)
		ok     func() bool
	}{
		{"without the CRD only Services are watched", func(*testing.T) {}, kinds("Service")},
		{"the CRD appears: Gadgets are watched", func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "gadget.yaml")
			if err := os.WriteFile(f, []byte(strings.ReplaceAll(gadgetCRD, "GROUP", group)), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := kubetest.InstallCRDs(context.Background(), admin, f); err != nil {
				t.Fatal(err)
			}
		}, kinds("Service", "Gadget")},
		{"a Gadget reaches Translate", func(t *testing.T) {
			g := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Gadget",
				"metadata": map[string]any{"name": "g1", "namespace": "default"}}}
			if _, err := dynamic.NewForConfigOrDie(admin).Resource(gadgets.GVR).Namespace("default").Create(context.Background(), g, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func() bool { return seen.Load() == 1 }},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			s.change(t)
			start := time.Now()
			waitFor(t, 30*time.Second, s.name, s.ok)
			t.Logf("held %v after the change (kinds %v)", time.Since(start).Round(time.Millisecond), w.Kinds())
		}) {
			return
		}
	}
}
