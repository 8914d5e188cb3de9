package ca

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// TestMain stops the shared kube-apiserver that the SecretStore tests start
// on first use; the other tests of this package never start it.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

var nsSeq atomic.Int32

// secretEnv returns a client of the real apiserver and a fresh namespace.
func secretEnv(t *testing.T) (kubernetes.Interface, string, context.Context) {
	t.Helper()
	kc, err := kubernetes.NewForConfig(kubetest.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	ns := fmt.Sprintf("ca-store-%d-%d", os.Getpid(), nsSeq.Add(1))
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return kc, ns, ctx
}

func secretStore(t *testing.T, kc kubernetes.Interface, ns, name string) *SecretStore {
	t.Helper()
	s, err := NewSecretStore(kc.CoreV1(), ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func caOn(ctx context.Context, s Store) (*CA, error) {
	return New(ctx, Options{TrustDomain: td, Store: s, Logger: slog.New(slog.DiscardHandler)})
}

// roots returns the DER of every trusted root, newest first.
func roots(c *CA) [][]byte {
	var out [][]byte
	for _, r := range c.Bundle().X509Authorities() {
		out = append(out, r.Raw)
	}
	return out
}

func sameRoots(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestSecretStoreRestart: a CA created through one store instance is the CA
// another instance (a restarted or second replica) loads, and the Secret is
// an Opaque, labelled Secret with the one data key.
func TestSecretStoreRestart(t *testing.T) {
	kc, ns, ctx := secretEnv(t)
	first := secretStore(t, kc, ns, "causeway-ca")
	if _, err := first.Load(ctx); !errors.Is(err, ErrNoState) {
		t.Fatalf("Load of a missing Secret = %v, want ErrNoState", err)
	}
	c1, err := caOn(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := kc.CoreV1().Secrets(ns).Get(ctx, "causeway-ca", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != corev1.SecretTypeOpaque || sec.Labels[SecretLabelPartOf] != "causeway" || sec.Labels[SecretLabelComponent] != "ca" {
		t.Errorf("Secret type %q labels %v; want Opaque with part-of=causeway, component=ca", sec.Type, sec.Labels)
	}
	if len(sec.Data) != 1 || len(sec.Data[SecretKey]) == 0 {
		t.Errorf("Secret data keys %v; want only %q", keys(sec.Data), SecretKey)
	}

	tests := []struct {
		name   string
		change func(t *testing.T)
	}{
		{"restart loads the same CA", func(*testing.T) {}},
		{"restart after a rotation loads both roots", func(t *testing.T) {
			if err := c1.Rotate(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.change(t)
			c2, err := caOn(ctx, secretStore(t, kc, ns, "causeway-ca"))
			if err != nil {
				t.Fatal(err)
			}
			if !sameRoots(roots(c1), roots(c2)) || c1.ActiveID() != c2.ActiveID() {
				t.Errorf("second instance: %d roots, active %s; want the first's %d roots, active %s",
					len(roots(c2)), c2.ActiveID(), len(roots(c1)), c1.ActiveID())
			}
			s1, _ := c1.Bundle().SequenceNumber()
			s2, _ := c2.Bundle().SequenceNumber()
			if s1 != s2 {
				t.Errorf("bundle sequence %d after reload, want %d", s2, s1)
			}
		})
	}
}

// barrierStore holds its first Load until every participant has loaded, so
// that all of them find no Secret and race to create one.
type barrierStore struct {
	Store
	once   sync.Once
	loaded *sync.WaitGroup
}

func (b *barrierStore) Load(ctx context.Context) (*State, error) {
	st, err := b.Store.Load(ctx)
	b.once.Do(func() { b.loaded.Done(); b.loaded.Wait() })
	return st, err
}

// TestSecretStoreFirstCreationRace: two replicas start at once on an empty
// cluster. Exactly one creates the CA; the other's create is a conflict, and
// after a reload it runs the winner's CA.
func TestSecretStoreFirstCreationRace(t *testing.T) {
	kc, ns, ctx := secretEnv(t)
	const replicas = 2
	var loaded sync.WaitGroup
	loaded.Add(replicas)
	stores := make([]*SecretStore, replicas)
	cas := make([]*CA, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		stores[i] = secretStore(t, kc, ns, "causeway-ca")
		wg.Go(func() { cas[i], errs[i] = caOn(ctx, &barrierStore{Store: stores[i], loaded: &loaded}) })
	}
	wg.Wait()
	winner, loser := -1, -1
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
		case errors.Is(err, ErrConflict):
			loser = i
		default:
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if winner < 0 || loser < 0 {
		t.Fatalf("errors %v; want exactly one replica to win and one ErrConflict", errs)
	}
	t.Logf("replica %d won; replica %d: %v", winner, loser, errs[loser])
	reloaded, err := caOn(ctx, stores[loser])
	if err != nil {
		t.Fatalf("loser's reload: %v", err)
	}
	if !sameRoots(roots(reloaded), roots(cas[winner])) {
		t.Error("after reload the loser runs a different CA from the winner")
	}
	// The Secret holds the winner's CA, not the loser's first attempt.
	stored, err := caOn(ctx, secretStore(t, kc, ns, "causeway-ca"))
	if err != nil {
		t.Fatal(err)
	}
	if !sameRoots(roots(stored), roots(cas[winner])) {
		t.Error("the Secret does not hold the winner's CA")
	}
}

// TestSecretStoreUpdateConflict: two replicas run the same CA; one rotates.
// The other's rotation, made from a stale read, is refused and leaves the
// first one's state in place; after a reload it can save again.
func TestSecretStoreUpdateConflict(t *testing.T) {
	kc, ns, ctx := secretEnv(t)
	sa, sb := secretStore(t, kc, ns, "causeway-ca"), secretStore(t, kc, ns, "causeway-ca")
	a, err := caOn(ctx, sa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := caOn(ctx, sb)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	want := roots(a)

	steps := []struct {
		name     string
		do       func() error
		conflict bool
	}{
		{"stale replica's rotation is a conflict", func() error { return b.Rotate(ctx) }, true},
		{"still a conflict until it reloads", func() error { return b.Prepare(ctx) }, true},
		{"after a reload it saves", func() error {
			if b, err = caOn(ctx, sb); err != nil {
				return err
			}
			if !sameRoots(roots(b), want) {
				return errors.New("reloaded CA is not the rotated one")
			}
			err := b.Rotate(ctx)
			want = roots(b)
			return err
		}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			if st.conflict != errors.Is(err, ErrConflict) || (!st.conflict && err != nil) {
				t.Fatalf("err = %v; conflict wanted: %v", err, st.conflict)
			}
			if st.conflict && !strings.Contains(err.Error(), ns+"/causeway-ca") {
				t.Errorf("error %q does not name the Secret", err)
			}
			stored, err := caOn(ctx, secretStore(t, kc, ns, "causeway-ca"))
			if err != nil {
				t.Fatal(err)
			}
			if !sameRoots(roots(stored), want) {
				t.Errorf("Secret holds %d roots, not the %d expected: overwritten", len(roots(stored)), len(want))
			}
		})
	}
}

// TestSecretStoreRefusesBadSecrets: a Secret that exists but is not a CA
// Secret is an error naming the Secret and what is wrong, never a new CA,
// and the error never quotes the data.
func TestSecretStoreRefusesBadSecrets(t *testing.T) {
	kc, ns, ctx := secretEnv(t)
	tests := []struct {
		name    string
		typ     corev1.SecretType
		data    map[string][]byte
		wantErr string
	}{
		{"missing key", corev1.SecretTypeOpaque, map[string][]byte{"tls.key": []byte("x")}, `data key "ca.json" missing`},
		{"no data at all", corev1.SecretTypeOpaque, nil, `data key "ca.json" missing`},
		{"empty key", corev1.SecretTypeOpaque, map[string][]byte{SecretKey: {}}, `data key "ca.json" is empty`},
		{"wrong type", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}, `type "kubernetes.io/dockerconfigjson", want "Opaque"`},
		{"not JSON", corev1.SecretTypeOpaque, map[string][]byte{SecretKey: []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n")}, `data key "ca.json": invalid JSON at byte`},
		{"wrong JSON type", corev1.SecretTypeOpaque, map[string][]byte{SecretKey: []byte(`{"trustDomain":"cluster.local","authorities":[{"rootKey":"-----BEGIN PRIVATE KEY-----"}],"sequence":"PRIVATE"}`)}, `data key "ca.json": field "sequence"`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("bad-%d", i)
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: tt.typ, Data: tt.data}
			created, err := kc.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = caOn(ctx, secretStore(t, kc, ns, name))
			if err == nil {
				t.Fatal("CA started on a bad Secret")
			}
			if !strings.Contains(err.Error(), "CA Secret "+ns+"/"+name) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q; want it to name %s/%s and say %q", err, ns, name, tt.wantErr)
			}
			if strings.Contains(err.Error(), "PRIVATE") {
				t.Errorf("error quotes the Secret's data: %q", err)
			}
			got, err := kc.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got.ResourceVersion != created.ResourceVersion {
				t.Errorf("refused Secret was modified (resourceVersion %s -> %s)", created.ResourceVersion, got.ResourceVersion)
			}
		})
	}
}

func TestNewSecretStoreArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, ns, secret string
	}{
		{"no namespace", "", "causeway-ca"},
		{"no name", "causeway-system", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewSecretStore(kubernetes.New(nil).CoreV1(), tt.ns, tt.secret); err == nil {
				t.Errorf("NewSecretStore(%q, %q) accepted", tt.ns, tt.secret)
			}
		})
	}
	if _, err := NewSecretStore(nil, "a", "b"); err == nil {
		t.Error("NewSecretStore without a client accepted")
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
