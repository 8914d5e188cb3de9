package deploy_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// asServiceAccount is a client that impersonates ns/name, so the RBAC in
// deploy/base decides what it may do.
func asServiceAccount(t *testing.T, cfg *rest.Config, ns, name string) *kubernetes.Clientset {
	t.Helper()
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	kc, err := kubernetes.NewForConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}

// startLinks runs one cluster's federation in process; store may be nil.
func startLinks(t *testing.T, cluster string, store federation.Store) (*federation.Links, spiffeid.TrustDomain) {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(cluster + ".causeway.local")
	c := identitytest.NewCA(t, td, nil)
	svid, err := c.NewSVIDSource(spiffeid.RequireFromPath(td, "/ns/causeway/sa/control"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	links, err := federation.New(federation.Options{Cluster: cluster, TrustDomain: td, SVID: svid, Bundle: c,
		Federated: bundle.NewSet(), Advertise: []string{lis.Addr().String()}, Store: store,
		Heartbeat: 100 * time.Millisecond, BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Logger: identitytest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = links.Serve(lis) })
	wg.Go(func() { _ = links.Run(ctx) })
	t.Cleanup(func() { cancel(); links.Close(); wg.Wait() })
	return links, td
}

// TestFederationSecret runs the kube-mode chain on the real apiserver with
// deploy/base's RBAC: west's control plane (as its ServiceAccount) keeps its
// links in the causeway-federation Secret; a node agent (as its
// ServiceAccount) follows that Secret into the bundle set its Workload API
// serves; a go-spiffe client of that Workload API gets east's bundle as a
// federated bundle after the link, and loses it after the unlink. The node
// agent can neither write the Secret nor read another.
func TestFederationSecret(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	docs, err := kubetest.ReadFiles("base/namespace.yaml", "base/rbac.yaml", "base/node-agent.yaml")
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
	control := asServiceAccount(t, cfg, "causeway-system", "causeway-control-plane")
	agent := asServiceAccount(t, cfg, "causeway-node", "causeway-node-agent")
	const ns, name = "causeway-system", "causeway-federation"
	// Both act at once on what was just applied; wait until the authorizer
	// has it (see kubetest.RBACSettled).
	admin := kubernetes.NewForConfigOrDie(cfg)
	kubetest.RBACSettled(ctx, t, admin, "system:serviceaccount:causeway-system:causeway-control-plane",
		[]string{"system:serviceaccounts", "system:serviceaccounts:causeway-system", "system:authenticated"},
		[]authorizationv1.ResourceAttributes{{Verb: "create", Resource: "secrets", Namespace: ns},
			{Verb: "get", Resource: "secrets", Namespace: ns, Name: name}, {Verb: "update", Resource: "secrets", Namespace: ns, Name: name}})
	kubetest.RBACSettled(ctx, t, admin, "system:serviceaccount:causeway-node:causeway-node-agent",
		[]string{"system:serviceaccounts", "system:serviceaccounts:causeway-node", "system:authenticated"},
		[]authorizationv1.ResourceAttributes{{Verb: "get", Resource: "secrets", Namespace: ns, Name: name}})
	writer, err := federation.NewSecretStore(control.CoreV1(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := federation.NewSecretStore(agent.CoreV1(), ns, name)
	if err != nil {
		t.Fatal(err)
	}

	east, eastTD := startLinks(t, "east", nil)
	west, westTD := startLinks(t, "west", writer)
	westCA := identitytest.NewCA(t, westTD, nil) // the node agent's view of west's CA; only federated bundles matter here
	set := bundle.NewSet()
	follower := &federation.BundleFollower{Store: reader, Set: set, Logger: identitytest.Quiet}
	const interval = 100 * time.Millisecond
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = follower.Run(runCtx, interval) })
	defer func() { stopRun(); wg.Wait() }()

	addr := identitytest.StartWorkloadAPI(t, westCA, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/web", ""), Federated: set})
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// hasEast polls what a sidecar would fetch.
	hasEast := func() bool {
		x, err := client.FetchX509Context(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return x.Bundles.Has(eastTD)
	}
	within := func(what string, want bool) time.Duration {
		t.Helper()
		start := time.Now()
		for hasEast() != want {
			if time.Since(start) > 30*time.Second {
				t.Fatalf("after 30s: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}

	steps := []struct {
		name string
		do   func(t *testing.T) error
		want bool
	}{
		{"before any link", func(*testing.T) error { return nil }, false},
		{"link", func(t *testing.T) error {
			tok, err := east.Generate(time.Minute)
			if err != nil {
				return err
			}
			_, err = west.Apply(ctx, tok)
			return err
		}, true},
		{"unlink", func(*testing.T) error { return west.Remove(ctx, "east") }, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if err := s.do(t); err != nil {
				t.Fatal(err)
			}
			took := within("east's bundle served = "+map[bool]string{true: "true", false: "false"}[s.want], s.want)
			t.Logf("%s -> Workload API answer: %s (follow interval %s)", s.name, took.Round(time.Millisecond), interval)
		})
	}
	sec, err := control.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sec.Data[federation.SecretKey]), `"links": []`) {
		t.Errorf("after unlink the Secret holds %s", sec.Data[federation.SecretKey])
	}

	t.Run("node agent cannot write", func(t *testing.T) {
		if _, err := reader.Load(ctx); err != nil {
			t.Fatal(err)
		}
		err := reader.Save(ctx, &federation.State{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("node agent Save = %v, want Forbidden", err)
		}
	})
	t.Run("node agent cannot follow another Secret", func(t *testing.T) {
		// The CA's Secret, which the node agent may read: made here when
		// no other test has made it yet, since a missing Secret reads as
		// no links at all; and then deleted again, so the tests that make
		// the real one (TestRBAC) find what they would without this one.
		admin := kubernetes.NewForConfigOrDie(cfg)
		_, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "causeway-ca", Namespace: ns},
			Data: map[string][]byte{"not-federation": []byte("{}")}}, metav1.CreateOptions{})
		switch {
		case err == nil:
			defer func() {
				if err := admin.CoreV1().Secrets(ns).Delete(context.Background(), "causeway-ca", metav1.DeleteOptions{}); err != nil {
					t.Errorf("delete the stand-in CA Secret: %v", err)
				}
			}()
		case !apierrors.IsAlreadyExists(err):
			t.Fatal(err)
		}
		other, _ := federation.NewSecretStore(agent.CoreV1(), ns, "causeway-ca")
		f := &federation.BundleFollower{Store: other, Set: bundle.NewSet()}
		if err := f.Sync(ctx); err == nil || !strings.Contains(err.Error(), "Secret causeway-system/causeway-ca") {
			t.Fatalf("Sync of another Secret = %v, want an error naming it", err)
		}
	})
}

// TestFederationSecretConflict: two writers of the federation Secret (a
// control plane replica starting during a rolling update) never overwrite
// each other blindly: a Save over a version not read is ErrConflict and
// writes nothing, and a Load makes the next Save possible.
func TestFederationSecretConflict(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	docs, err := kubetest.ReadFiles("base/namespace.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Apply(ctx, docs[0].Obj, false); err != nil {
		t.Fatalf("%s: %v", docs[0], err)
	}
	// A scratch Secret, as cluster admin: the control plane's RBAC allows
	// only causeway-federation, which TestFederationSecret uses.
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := func(cluster string) *federation.State {
		return &federation.State{Links: []federation.SavedLink{{Cluster: cluster}}}
	}
	one, _ := federation.NewSecretStore(admin.CoreV1(), "causeway-system", "federation-conflict")
	two, _ := federation.NewSecretStore(admin.CoreV1(), "causeway-system", "federation-conflict")
	steps := []struct {
		name     string
		do       func() error
		conflict bool
	}{
		{"one loads (absent)", func() error { _, err := one.Load(ctx); return err }, false},
		{"two loads (absent)", func() error { _, err := two.Load(ctx); return err }, false},
		{"one creates", func() error { return one.Save(ctx, st("a")) }, false},
		{"two cannot create over it", func() error { return two.Save(ctx, st("b")) }, true},
		{"two loads one's", func() error {
			got, err := two.Load(ctx)
			if err == nil && (len(got.Links) != 1 || got.Links[0].Cluster != "a") {
				t.Errorf("two loaded %+v, want one's state", got)
			}
			return err
		}, false},
		{"two updates", func() error { return two.Save(ctx, st("b")) }, false},
		{"one cannot update over it", func() error { return one.Save(ctx, st("c")) }, true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			err := s.do()
			if got := errors.Is(err, federation.ErrConflict); got != s.conflict || (!s.conflict && err != nil) {
				t.Fatalf("err = %v, want conflict %v", err, s.conflict)
			}
		})
	}
	got, err := one.Load(ctx)
	if err != nil || len(got.Links) != 1 || got.Links[0].Cluster != "b" {
		t.Errorf("stored state %+v (%v), want two's", got, err)
	}
}
