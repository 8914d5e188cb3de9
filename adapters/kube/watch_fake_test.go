package kube_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"

	"go.uber.org/goleak"

	"github.com/causeway-mesh/causeway/adapters/kube"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/spec"
)

// fakeAPI builds fake clients holding the objects of a YAML text (as
// Linkerd's NewFakeAPI does): core kinds in a typed fake clientset, custom
// kinds in a fake dynamic client, and discovery listing every kind of
// kube.DefaultResources. Custom objects must be written in the version the
// Watcher lists (the CRDs' storage version): the fakes have no conversion
// and no managedFields.
func fakeAPI(t *testing.T, text string) (*fake.Clientset, *dynamicfake.FakeDynamicClient) {
	t.Helper()
	docs, err := kubetest.Parse("fake", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var typed, custom []runtime.Object
	for _, d := range docs {
		switch d.Obj.GroupVersionKind().Group {
		case "", "apps", "discovery.k8s.io":
			data, err := json.Marshal(d.Obj.Object)
			if err != nil {
				t.Fatal(err)
			}
			obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			typed = append(typed, obj)
		default:
			custom = append(custom, d.Obj)
		}
	}
	kc := fake.NewClientset(typed...)
	listKinds := map[schema.GroupVersionResource]string{}
	byGV := map[string]*metav1.APIResourceList{}
	var lists []*metav1.APIResourceList
	for _, r := range kube.DefaultResources() {
		gv := r.GVR.GroupVersion().String()
		if byGV[gv] == nil {
			byGV[gv] = &metav1.APIResourceList{GroupVersion: gv}
			lists = append(lists, byGV[gv])
		}
		byGV[gv].APIResources = append(byGV[gv].APIResources, metav1.APIResource{Name: r.GVR.Resource, Kind: r.Kind, Namespaced: r.Namespaced})
		listKinds[r.GVR] = r.Kind + "List"
	}
	kc.Discovery().(*fakediscovery.FakeDiscovery).Resources = lists
	return kc, dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, custom...)
}

// TestWatcherWithFakeClients runs the Watcher's informer, queue and publish
// path on fake clients, so it is covered where no apiserver binary exists.
// Status writing needs a real apiserver (TestSnapshotFollowsCluster).
func TestWatcherWithFakeClients(t *testing.T) {
	// Every goroutine Run starts must be gone when it returns.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	kc, dc := fakeAPI(t, fakeWorkloads)
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
	split := dc.Resource(schema.GroupVersionResource{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"}).Namespace("shop")
	setWeights := func(w1, w2 int64) func(t *testing.T) {
		return func(t *testing.T) {
			u, err := split.Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			backends := []any{
				map[string]any{"service": "web-v1", "weight": w1},
				map[string]any{"service": "web-v2", "weight": w2},
			}
			if err := unstructured.SetNestedSlice(u.Object, backends, "spec", "backends"); err != nil {
				t.Fatal(err)
			}
			if _, err := split.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []struct {
		name   string
		change func(t *testing.T)
		want   func(s *spec.Snapshot) bool
	}{
		{"initial objects", func(*testing.T) {}, func(s *spec.Snapshot) bool {
			return ratio(weights(s, "shop", "web"), "web-v1", "web-v2", 1, 1) && hasPolicy(s, "shop", "client-to-web")
		}},
		{"split updated", setWeights(20, 80), func(s *spec.Snapshot) bool {
			return ratio(weights(s, "shop", "web"), "web-v1", "web-v2", 1, 4)
		}},
		{"target deleted", func(t *testing.T) {
			tt := dc.Resource(schema.GroupVersionResource{Group: "access.smi-spec.io", Version: "v1alpha3", Resource: "traffictargets"}).Namespace("shop")
			if err := tt.Delete(ctx, "client-to-web", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(s *spec.Snapshot) bool { return !hasPolicy(s, "shop", "client-to-web") }},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			s.change(t)
			waitSnapshot(t, w, s.name, s.want)
		}) {
			return
		}
	}
	t.Run("invalid split is not published", func(t *testing.T) {
		setWeights(-1, 80)(t)
		waitFor(t, 10*time.Second, "diagnostics with the negative weight", func() bool { return w.Diagnostics().HasErrors() })
		select {
		case u := <-w.Updates():
			t.Errorf("published a snapshot from invalid input: %v", weights(u.Snapshot, "shop", "web"))
		case <-time.After(200 * time.Millisecond):
		}
	})
}

const fakeWorkloads = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: shop}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, appProtocol: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {selector: {app: web, v: "1"}, ports: [{name: http, port: 80, appProtocol: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web, v: "2"}, ports: [{name: http, port: 80, appProtocol: http}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web-v1, namespace: shop}
spec:
  selector: {matchLabels: {app: web, v: "1"}}
  template:
    metadata: {labels: {app: web, v: "1"}}
    spec: {serviceAccountName: web, containers: [{name: app, image: example.invalid/web}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: client, namespace: shop}
spec:
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec: {serviceAccountName: client, containers: [{name: app, image: example.invalid/client}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop}
spec:
  service: web
  backends: [{service: web-v1, weight: 50}, {service: web-v2, weight: 50}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-web, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources: [{kind: ServiceAccount, name: client, namespace: shop}]
`
