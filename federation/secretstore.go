package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// SecretKey is the data key of the federation Secret holding the State as
// JSON.
const SecretKey = "links.json"

// SecretStore keeps the State in one Kubernetes Secret (type Opaque, key
// SecretKey): the cluster-mode counterpart of FileStore. It is a Secret, not
// a ConfigMap, because whoever writes it decides which trust domains every
// workload of the cluster trusts: RBAC on the Secret (the control plane
// writes, node agents only get) is what guards that.
//
// Every write is conditional on what this store last read, as in
// identity/ca's SecretStore: Save creates the Secret only if Load found none
// and updates it only at the resourceVersion Load (or the last Save) saw;
// otherwise it returns ErrConflict until the next Load.
type SecretStore struct {
	secrets   typedcorev1.SecretInterface
	namespace string
	name      string

	mu   sync.Mutex
	last *corev1.Secret // as last read or written; nil: believed absent
}

// NewSecretStore returns a store for Secret namespace/name; client is
// typically kubernetes.Interface.CoreV1(). It makes no API call.
func NewSecretStore(client typedcorev1.SecretsGetter, namespace, name string) (*SecretStore, error) {
	if client == nil {
		return nil, errors.New("federation Secret store: no Kubernetes client")
	}
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("federation Secret store: want namespace/name, got %q/%q", namespace, name)
	}
	return &SecretStore{secrets: client.Secrets(namespace), namespace: namespace, name: name}, nil
}

// String names the Secret, for logs and errors.
func (s *SecretStore) String() string { return "Secret " + s.namespace + "/" + s.name }

// Load reads the Secret. A missing Secret is an empty State (no link yet,
// or every link removed before the first save); one of another type or
// without SecretKey is an error naming both, never an empty State, so a
// damaged Secret cannot make followers drop every peer's bundle.
func (s *SecretStore) Load(ctx context.Context) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secrets.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.last = nil
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	// Remember the version even if the contents are refused, so that any
	// later Save stays conditional on this read.
	s.last = sec
	if sec.Type != corev1.SecretTypeOpaque {
		return nil, fmt.Errorf("type %q, want %q", sec.Type, corev1.SecretTypeOpaque)
	}
	b, ok := sec.Data[SecretKey]
	if !ok {
		return nil, fmt.Errorf("data key %q missing", SecretKey)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("data key %q: %w", SecretKey, err)
	}
	return &st, nil
}

// Save writes st if the Secret is still as this store last saw it, else
// returns an error wrapping ErrConflict and writes nothing.
func (s *SecretStore) Save(ctx context.Context, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace}}
		setFederationSecret(sec, b)
		created, err := s.secrets.Create(ctx, sec, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			return fmt.Errorf("%s created by someone else since it was loaded: %w", s, ErrConflict)
		case err != nil:
			return fmt.Errorf("%s: create: %w", s, err)
		}
		s.last = created
		return nil
	}
	// Update the object as read, keeping what others added (annotations,
	// owner references); its resourceVersion makes the write conditional.
	sec := s.last.DeepCopy()
	setFederationSecret(sec, b)
	updated, err := s.secrets.Update(ctx, sec, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err):
		return fmt.Errorf("%s changed since resourceVersion %s: %w", s, s.last.ResourceVersion, ErrConflict)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s deleted since it was loaded: %w", s, ErrConflict)
	case err != nil:
		return fmt.Errorf("%s: update: %w", s, err)
	}
	s.last = updated
	return nil
}

// setFederationSecret makes sec a federation Secret holding data: type,
// labels and the single key.
func setFederationSecret(sec *corev1.Secret, data []byte) {
	sec.Type = corev1.SecretTypeOpaque
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	sec.Labels["app.kubernetes.io/part-of"] = "causeway"
	sec.Labels["app.kubernetes.io/component"] = "federation"
	sec.Data = map[string][]byte{SecretKey: data}
	sec.StringData = nil
}
