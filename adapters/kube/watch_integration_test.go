package kube_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/kube"
	adapterpipeline "github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/spec"
)

// One real apiserver for this test binary, started by the first test that
// needs it (the pure translation tests never do).
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// controlPlaneSA is who the watcher runs as: the ServiceAccount of
// deploy/base, with only the RBAC of deploy/base/rbac.yaml. Running the
// integration tests as that user is what shows the RBAC is enough.
const controlPlaneSA = "system:serviceaccount:causeway-system:causeway-control-plane"

var setup struct {
	once sync.Once
	err  error
}

// cluster returns the admin config and the control plane's (impersonated)
// config, after installing deploy/crds and the control plane's namespace,
// ServiceAccount and RBAC.
func cluster(t *testing.T) (admin, controlPlane *rest.Config) {
	t.Helper()
	admin = kubetest.Config(t)
	setup.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		setup.err = kubetest.InstallCRDs(ctx, admin,
			"../../deploy/crds/split.smi-spec.io.yaml", "../../deploy/crds/access.smi-spec.io.yaml",
			"../../deploy/crds/specs.smi-spec.io.yaml", "../../deploy/crds/causeway.dev.yaml",
			"../../deploy/crds/multicluster.x-k8s.io.yaml")
		if setup.err != nil {
			return
		}
		docs, err := kubetest.ReadFiles("../../deploy/base/namespace.yaml", "../../deploy/base/rbac.yaml", "../../deploy/base/control-plane.yaml")
		if err != nil {
			setup.err = err
			return
		}
		a, err := kubetest.NewApplier(admin)
		if err != nil {
			setup.err = err
			return
		}
		for _, d := range docs {
			if _, err := a.Apply(ctx, d.Obj, false); err != nil {
				setup.err = fmt.Errorf("%s: %w", d, err)
				return
			}
		}
		fmt.Fprintf(os.Stderr, "kube integration setup (CRDs established, RBAC applied) in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if setup.err != nil {
		t.Fatal(setup.err)
	}
	controlPlane = rest.CopyConfig(admin)
	controlPlane.Impersonate = rest.ImpersonationConfig{
		UserName: controlPlaneSA,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"},
	}
	return admin, controlPlane
}

// pipeline is what the control plane passes as TranslateFunc.
func pipeline(objs []adapters.Object) (*spec.Snapshot, spec.Diagnostics) {
	snap, diags, _ := adapterpipeline.Build(objs, adapterpipeline.Options{})
	return snap, diags
}

// results records what a Watcher passed to Serve's publish function.
type results struct {
	mu    sync.Mutex
	calls []spec.Diagnostics
}

func (r *results) publish(_ *spec.Snapshot, d spec.Diagnostics) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, d)
	return !d.HasErrors()
}

// withErrors counts the published results that held an error.
func (r *results) withErrors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, d := range r.calls {
		if d.HasErrors() {
			n++
		}
	}
	return n
}

// startWatcher serves a Watcher until the test ends (or stop is called) and
// returns it with a stop function that waits for Serve to return.
func startWatcher(t *testing.T, cfg *rest.Config, e kube.Election) (*kube.Watcher, func()) {
	w, _, stop := startServing(t, cfg, e)
	return w, stop
}

func startServing(t *testing.T, cfg *rest.Config, e kube.Election) (*kube.Watcher, *results, func()) {
	t.Helper()
	w, err := kube.NewWatcher(kube.WatchOptions{Config: cfg, Translate: pipeline, Election: e, Settle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r := &results{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, r.publish) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("watcher %s: Serve: %v", e.Identity, err)
			}
		})
	}
	t.Cleanup(stop)
	return w, r, stop
}

// waitSnapshot reads published snapshots until one satisfies ok.
func waitSnapshot(t *testing.T, w *kube.Watcher, what string, ok func(*spec.Snapshot) bool) *spec.Snapshot {
	t.Helper()
	timeout := time.After(30 * time.Second)
	var last *spec.Snapshot
	for {
		select {
		case u := <-w.Updates():
			last = u.Snapshot
			if ok(last) {
				return last
			}
		case <-timeout:
			t.Fatalf("no snapshot with %s within 30s; last diagnostics: %v", what, w.Diagnostics())
			return last
		}
	}
}

func weights(s *spec.Snapshot, ns, name string) map[string]int64 {
	for _, sp := range s.Splits {
		if sp.Key.Namespace == ns && sp.Key.Name == name {
			out := map[string]int64{}
			for _, b := range sp.Backends {
				out[b.Service.Name] = b.Weight
			}
			return out
		}
	}
	return nil
}

// ratio reports whether weights of a and b stand as wa:wb.
func ratio(w map[string]int64, a, b string, wa, wb int64) bool {
	return w != nil && w[a]*wb == w[b]*wa && w[a]+w[b] > 0
}

func hasPolicy(s *spec.Snapshot, ns, name string) bool {
	for _, p := range s.Policies {
		if p.Key.Namespace == ns && p.Key.Name == name {
			return true
		}
	}
	return false
}

func service(s *spec.Snapshot, ns, name string) *spec.Service {
	for i := range s.Services {
		if s.Services[i].Key.Namespace == ns && s.Services[i].Key.Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

const ns = "bookstore-it"

var workloads = strings.ReplaceAll(`
apiVersion: v1
kind: Namespace
metadata: {name: NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookstore, namespace: NS}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: bookbuyer, namespace: NS}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: NS}
spec:
  selector: {app: bookstore}
  ports: [{name: http, port: 14001, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: bookstore-v1, namespace: NS}
spec:
  selector: {app: bookstore, version: v1}
  ports: [{name: http, port: 14001, appProtocol: http}]
---
apiVersion: v1
kind: Service
metadata: {name: bookstore-v2, namespace: NS}
spec:
  selector: {app: bookstore, version: v2}
  ports: [{name: http, port: 14001, appProtocol: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bookstore-v1, namespace: NS}
spec:
  selector: {matchLabels: {app: bookstore, version: v1}}
  template:
    metadata: {labels: {app: bookstore, version: v1}}
    spec:
      serviceAccountName: bookstore
      containers: [{name: app, image: example.invalid/bookstore:1}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bookstore-v2, namespace: NS}
spec:
  selector: {matchLabels: {app: bookstore, version: v2}}
  template:
    metadata: {labels: {app: bookstore, version: v2}}
    spec:
      serviceAccountName: bookstore
      containers: [{name: app, image: example.invalid/bookstore:2}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: bookbuyer, namespace: NS}
spec:
  selector: {matchLabels: {app: bookbuyer}}
  template:
    metadata: {labels: {app: bookbuyer}}
    spec:
      serviceAccountName: bookbuyer
      containers: [{name: app, image: example.invalid/bookbuyer:1}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bookstore-v1-a
  namespace: NS
  labels: {kubernetes.io/service-name: bookstore-v1}
addressType: IPv4
endpoints: [{addresses: [10.1.0.1], conditions: {ready: true}}]
ports: [{name: http, port: 14001, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bookstore-v2-a
  namespace: NS
  labels: {kubernetes.io/service-name: bookstore-v2}
addressType: IPv4
endpoints: [{addresses: [10.1.0.2], conditions: {ready: true}}]
ports: [{name: http, port: 14001, protocol: TCP}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: bookstore-routes, namespace: NS}
spec:
  matches: [{name: books, methods: [GET], pathRegex: /books.*}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookbuyer-to-bookstore, namespace: NS}
spec:
  destination: {kind: ServiceAccount, name: bookstore, namespace: NS}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: NS}]
  rules: [{kind: HTTPRouteGroup, name: bookstore-routes, matches: [books]}]
`, "NS", ns)

// splitV1alpha1 is written in v1alpha1 with Quantity weights. The informer
// reads TrafficSplits as v1alpha4; only the written-version recovery makes
// "750m" readable (v1alpha4 weights are integers).
var splitV1alpha1 = strings.ReplaceAll(`
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: bookstore, namespace: NS}
spec:
  service: bookstore
  backends: [{service: bookstore-v1, weight: 750m}, {service: bookstore-v2, weight: 250m}]
`, "NS", ns)

func splitV1alpha4(w1, w2 int) string {
	return strings.ReplaceAll(fmt.Sprintf(`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: bookstore, namespace: NS}
spec:
  service: bookstore
  backends: [{service: bookstore-v1, weight: %d}, {service: bookstore-v2, weight: %d}]
`, w1, w2), "NS", ns)
}

var splitGVR = schema.GroupVersionResource{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"}

// accepted returns the Accepted condition of the TrafficSplit, as stored.
func accepted(ctx context.Context, dyn dynamic.Interface) (map[string]any, int64, error) {
	u, err := dyn.Resource(splitGVR).Namespace(ns).Get(ctx, "bookstore", metav1.GetOptions{})
	if err != nil {
		return nil, 0, err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == kube.ConditionAccepted {
			return m, u.GetGeneration(), nil
		}
	}
	return nil, u.GetGeneration(), nil
}

// waitCondition polls the TrafficSplit until its Accepted condition, for the
// current generation, has the status and a message containing msg.
func waitCondition(t *testing.T, dyn dynamic.Interface, status, reason, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var last map[string]any
	for ctx.Err() == nil {
		c, gen, err := accepted(ctx, dyn)
		if err != nil {
			t.Fatal(err)
		}
		last = c
		if c != nil && c["status"] == status && (reason == "" || c["reason"] == reason) && strings.Contains(fmt.Sprint(c["message"]), msg) && fmt.Sprint(c["observedGeneration"]) == fmt.Sprint(gen) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("TrafficSplit %s/bookstore: no Accepted=%s (%s, %q) within 30s; last condition %v", ns, status, reason, msg, last)
}

// waitEvent polls for an Event on the TrafficSplit with the reason. Only
// Events about the split as it is now (its UID) count: Events outlive the
// object, and one left by an earlier run (go test -count) of the same name
// would otherwise be taken for this run's.
func waitEvent(t *testing.T, kc kubernetes.Interface, dyn dynamic.Interface, evType, reason, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	split, err := dyn.Resource(splitGVR).Namespace(ns).Get(ctx, "bookstore", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for ctx.Err() == nil {
		evs, err := kc.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=TrafficSplit,involvedObject.name=bookstore,involvedObject.uid=" + string(split.GetUID())})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs.Items {
			if e.Type == evType && e.Reason == reason && strings.Contains(e.Message, msg) {
				if e.Source.Component != "causeway-control-plane" {
					t.Errorf("event source = %q, want causeway-control-plane", e.Source.Component)
				}
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s Event %s (%q) on TrafficSplit %s/bookstore within 30s", evType, reason, msg, ns)
}

// TestSnapshotFollowsCluster drives one watcher, running as the control
// plane's ServiceAccount, through a sequence of cluster changes; each step
// names what the published snapshot, the object's status and its Events
// must show afterwards.
func TestSnapshotFollowsCluster(t *testing.T) {
	admin, cp := cluster(t)
	a, err := kubetest.NewApplier(admin)
	if err != nil {
		t.Fatal(err)
	}
	kc := kubernetes.NewForConfigOrDie(admin)
	dyn := dynamic.NewForConfigOrDie(admin)
	w, served, _ := startServing(t, cp, kube.Election{
		Namespace: "causeway-system", LeaseName: "causeway-control-plane", Identity: "it-main",
		LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
	})
	ctx := context.Background()
	// The apiserver outlives this test (go test -count runs it again on
	// the same one): remove what the steps create, so that each step of the
	// next run is a change the watcher sees.
	t.Cleanup(func() {
		ctx := context.Background()
		_ = dyn.Resource(splitGVR).Namespace(ns).Delete(ctx, "bookstore", metav1.DeleteOptions{})
		for _, name := range []string{"bookbuyer-to-bookstore", "legacy-target"} {
			_ = dyn.Resource(schema.GroupVersionResource{Group: "access.smi-spec.io", Version: "v1alpha3", Resource: "traffictargets"}).
				Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
		}
	})
	apply := func(y string) func(t *testing.T) {
		return func(t *testing.T) {
			if err := a.ApplyYAML(ctx, y); err != nil {
				t.Fatal(err)
			}
		}
	}
	steps := []struct {
		name   string
		change func(t *testing.T)
		check  func(t *testing.T)
	}{
		{"services, workloads, slices, routes, target and a v1alpha1 split appear",
			apply(workloads + "---" + splitV1alpha1),
			func(t *testing.T) {
				s := waitSnapshot(t, w, "split 3:1, the policy and endpoints", func(s *spec.Snapshot) bool {
					v1 := service(s, ns, "bookstore-v1")
					return ratio(weights(s, ns, "bookstore"), "bookstore-v1", "bookstore-v2", 3, 1) &&
						hasPolicy(s, ns, "bookbuyer-to-bookstore") && v1 != nil && len(v1.Endpoints) == 1
				})
				if v1 := service(s, ns, "bookstore-v1"); v1.Endpoints[0].Addr != "10.1.0.1" || len(v1.Identities) != 1 ||
					v1.Identities[0].String() != "spiffe://cluster.local/ns/"+ns+"/sa/bookstore" {
					t.Errorf("bookstore-v1 = endpoints %v identities %v", v1.Endpoints, v1.Identities)
				}
				waitCondition(t, dyn, "True", "", "")
			}},
		{"updating the split (now v1alpha4) changes the weights",
			apply(splitV1alpha4(10, 90)),
			func(t *testing.T) {
				waitSnapshot(t, w, "split 1:9", func(s *spec.Snapshot) bool {
					return ratio(weights(s, ns, "bookstore"), "bookstore-v1", "bookstore-v2", 1, 9)
				})
			}},
		{"deleting the TrafficTarget removes its policy",
			func(t *testing.T) {
				if err := dyn.Resource(schema.GroupVersionResource{Group: "access.smi-spec.io", Version: "v1alpha3", Resource: "traffictargets"}).
					Namespace(ns).Delete(ctx, "bookbuyer-to-bookstore", metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			},
			func(t *testing.T) {
				s := waitSnapshot(t, w, "no policy", func(s *spec.Snapshot) bool { return !hasPolicy(s, ns, "bookbuyer-to-bookstore") })
				if !ratio(weights(s, ns, "bookstore"), "bookstore-v1", "bookstore-v2", 1, 9) {
					t.Errorf("the split changed too: %v", weights(s, ns, "bookstore"))
				}
			}},
		{"a v1alpha1 TrafficTarget (fields at the top level) keeps its shape and version",
			apply(strings.ReplaceAll(`
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: legacy-target, namespace: NS}
destination: {kind: ServiceAccount, name: bookstore, namespace: NS}
sources: [{kind: ServiceAccount, name: bookbuyer, namespace: NS}]
specs: [{kind: HTTPRouteGroup, name: bookstore-routes, matches: [books]}]
`, "NS", ns)),
			func(t *testing.T) {
				waitSnapshot(t, w, "the v1alpha1 policy", func(s *spec.Snapshot) bool { return hasPolicy(s, ns, "legacy-target") })
			}},
		{"a negative weight is reported on the split and the last good snapshot stays",
			apply(splitV1alpha4(-5, 90)),
			func(t *testing.T) {
				waitCondition(t, dyn, "False", kube.ReasonInvalid, "spec.backends[0].weight")
				waitEvent(t, kc, dyn, corev1.EventTypeWarning, kube.ReasonInvalid, "spec.backends[0].weight")
				if !w.Diagnostics().HasErrors() {
					t.Errorf("watcher diagnostics hold no error: %v", w.Diagnostics())
				}
				// The status write made the watcher translate again, to the
				// same result, which Serve does not pass on twice.
				time.Sleep(300 * time.Millisecond)
				if n := served.withErrors(); n != 1 {
					t.Errorf("Serve published %d results with errors, want 1", n)
				}
				// Anything published since the delete must still be 1:9.
				select {
				case u := <-w.Updates():
					if !ratio(weights(u.Snapshot, ns, "bookstore"), "bookstore-v1", "bookstore-v2", 1, 9) {
						t.Errorf("an invalid split was published: %v", weights(u.Snapshot, ns, "bookstore"))
					}
				default:
				}
			}},
		{"fixing the split publishes it and accepts it again",
			apply(splitV1alpha4(50, 50)),
			func(t *testing.T) {
				waitSnapshot(t, w, "split 1:1", func(s *spec.Snapshot) bool {
					return ratio(weights(s, ns, "bookstore"), "bookstore-v1", "bookstore-v2", 1, 1)
				})
				waitCondition(t, dyn, "True", "", "")
				waitEvent(t, kc, dyn, corev1.EventTypeNormal, kube.ReasonAccepted, "")
			}},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			s.change(t)
			s.check(t)
			t.Logf("settled in %v", time.Since(start).Round(time.Millisecond))
		}) {
			return // later steps build on this one
		}
	}
	if !w.IsLeader() {
		t.Error("the only watcher is not leader")
	}
}

// TestLeadershipMoves runs two watchers on one Lease, stops the leader and
// measures how long the other takes to lead: with the Lease released on a
// clean stop, about one retry period; with it kept (a crash), at most the
// lease duration plus a retry.
func TestLeadershipMoves(t *testing.T) {
	admin, _ := cluster(t)
	const (
		lease = 3 * time.Second
		renew = 2 * time.Second
		retry = 250 * time.Millisecond
	)
	cases := []struct {
		name       string
		keep       bool
		min, limit time.Duration
	}{
		{"clean stop releases the lease", false, 0, lease},
		// The follower counts the lease from when it last saw the record
		// change (at most a retry before the stop), so it cannot lead much
		// before the lease runs out; it retries every RetryPeriod plus up to
		// 120% jitter, and the rest of the margin is apiserver latency on a
		// loaded two-core machine.
		{"crash leaves the lease to expire", true, lease / 2, lease + 2*time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := kube.Election{
				Namespace: "default", LeaseName: "it-" + strings.ReplaceAll(c.name, " ", "-"),
				LeaseDuration: lease, RenewDeadline: renew, RetryPeriod: retry, KeepLeaseOnStop: c.keep,
			}
			e1, e2 := e, e
			e1.Identity, e2.Identity = "first", "second"
			first, stopFirst := startWatcher(t, admin, e1)
			waitFor(t, 10*time.Second, "first watcher leads", first.IsLeader)
			second, _ := startWatcher(t, admin, e2)
			// The second has synced and campaigned a few times without
			// winning: two leaders never coexist while the first renews.
			waitFor(t, 10*time.Second, "second watcher synced", second.Synced)
			for range 8 {
				if second.IsLeader() {
					t.Fatal("second watcher leads while the first holds the lease")
				}
				time.Sleep(retry)
			}
			start := time.Now()
			stopFirst()
			if first.IsLeader() {
				t.Error("stopped watcher still reports leading")
			}
			waitFor(t, 2*lease, "second watcher leads", second.IsLeader)
			took := time.Since(start)
			t.Logf("leadership moved in %v (between %v and %v)", took.Round(time.Millisecond), c.min, c.limit)
			if took > c.limit || took < c.min {
				t.Errorf("leadership took %v to move, want between %v and %v", took, c.min, c.limit)
			}
		})
	}
}

// TestUnservedKindsAreSkipped asks for a kind the apiserver does not serve
// (a CRD not installed): the watcher warns, watches the rest and publishes.
func TestUnservedKindsAreSkipped(t *testing.T) {
	admin, _ := cluster(t)
	w, err := kube.NewWatcher(kube.WatchOptions{
		Config:    admin,
		Translate: pipeline,
		Resources: []kube.Resource{kube.Services, {Kind: "Widget", GVR: schema.GroupVersionResource{Group: "widgets.example.com", Version: "v1", Resource: "widgets"}, Namespaced: true}},
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
	select {
	case u := <-w.Updates():
		if service(u.Snapshot, ns, "bookstore") == nil && service(u.Snapshot, "default", "kubernetes") == nil {
			t.Errorf("snapshot without any Service: %+v", u.Snapshot.Services)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no snapshot within 30s")
	}
}

// TestOnlyTheLeaderWrites runs two watchers with status writing on one
// Lease. Events carry the writer's identity (source.host): every Event about
// an invalid split comes from the leader, and after the leader stops the
// next one comes from its successor.
func TestOnlyTheLeaderWrites(t *testing.T) {
	admin, cp := cluster(t)
	a, err := kubetest.NewApplier(admin)
	if err != nil {
		t.Fatal(err)
	}
	kc := kubernetes.NewForConfigOrDie(admin)
	if err := a.ApplyYAML(context.Background(), `
apiVersion: v1
kind: Namespace
metadata: {name: leader-it}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: leader-it}
spec: {ports: [{name: http, port: 80, appProtocol: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: leader-it}
spec: {ports: [{name: http, port: 80, appProtocol: http}]}
`); err != nil {
		t.Fatal(err)
	}
	// Leave no invalid object behind: it would hold back every later
	// watcher's snapshot in this test binary.
	t.Cleanup(func() {
		_ = dynamic.NewForConfigOrDie(admin).Resource(splitGVR).Namespace("leader-it").Delete(context.Background(), "only-leader", metav1.DeleteOptions{})
	})
	split := func(w int) string {
		return fmt.Sprintf(`
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: only-leader, namespace: leader-it}
spec: {service: web, backends: [{service: web-v1, weight: %d}]}
`, w)
	}
	// A leader that cannot renew within RenewDeadline (a slow apiserver
	// write on a loaded machine) loses the Lease, and its successor's
	// Events would fail the first step: 4 s leaves room for that. The
	// handover in the second step is quick all the same, since a stopped
	// leader releases the Lease.
	e := kube.Election{Namespace: "causeway-system", LeaseName: "causeway-control-plane",
		LeaseDuration: 6 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: 250 * time.Millisecond}
	e1, e2 := e, e
	e1.Identity, e2.Identity = "writer-a", "writer-b"
	first, stopFirst := startWatcher(t, cp, e1)
	waitFor(t, 15*time.Second, "writer-a leads", first.IsLeader)
	second, _ := startWatcher(t, cp, e2)
	waitFor(t, 10*time.Second, "writer-b synced", second.Synced)

	// hosts waits for a Warning Event naming the weight and returns the
	// source hosts of all such Events about the split as it is now (its
	// UID): Events outlive the object, and an earlier run's (go test
	// -count), from its own writers, must not be counted.
	hosts := func(t *testing.T, weight string) []string {
		t.Helper()
		split, err := dynamic.NewForConfigOrDie(admin).Resource(splitGVR).Namespace("leader-it").Get(context.Background(), "only-leader", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			evs, err := kc.CoreV1().Events("leader-it").List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=only-leader,reason=Invalid,involvedObject.uid=" + string(split.GetUID())})
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			found := false
			for _, ev := range evs.Items {
				out = append(out, ev.Source.Host)
				found = found || strings.Contains(ev.Message, "got "+weight)
			}
			if found {
				return out
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no Invalid Event for weight %s within 30s", weight)
		return nil
	}
	steps := []struct {
		name   string
		weight int
		before func(t *testing.T)
		want   []string
	}{
		{"the leader reports", -3, func(*testing.T) {}, []string{"writer-a"}},
		{"after the leader stops, its successor reports", -7, func(t *testing.T) {
			stopFirst()
			waitFor(t, 10*time.Second, "writer-b leads", second.IsLeader)
		}, []string{"writer-a", "writer-b"}},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			s.before(t)
			if err := a.ApplyYAML(context.Background(), split(s.weight)); err != nil {
				t.Fatal(err)
			}
			got := hosts(t, fmt.Sprint(s.weight))
			for _, h := range got {
				if !slices.Contains(s.want, h) {
					t.Errorf("Event from %q, want only from %v", h, s.want)
				}
			}
			if !slices.Contains(got, s.want[len(s.want)-1]) {
				t.Errorf("no Event from %s among %v", s.want[len(s.want)-1], got)
			}
		}) {
			return
		}
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
