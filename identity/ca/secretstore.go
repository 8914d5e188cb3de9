package ca

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

// ErrConflict means the stored state changed since this store last read it
// (another control-plane replica saved first). Nothing was written. The
// caller must reload (ca.New again) instead of retrying the save, or it would
// replace the other replica's CA with its own.
var ErrConflict = errors.New("CA state changed in the store since it was loaded")

// SecretKey is the data key of the CA Secret holding the State as JSON.
const SecretKey = "ca.json"

// Labels put on the CA Secret so that `kubectl get secrets -l` finds it. They
// identify the Secret; they are not checked on Load, since the data key and
// a State for the right trust domain already make adopting a foreign Secret
// impossible by accident.
const (
	SecretLabelPartOf    = "app.kubernetes.io/part-of"
	SecretLabelComponent = "app.kubernetes.io/component"
)

// SecretStore keeps the State in one Kubernetes Secret (type Opaque, key
// SecretKey): the cluster-mode counterpart of DirStore, where RBAC on the
// Secret plays the part of the file's 0600 mode.
//
// Replicas never overwrite each other: every write is conditional on what
// this store last read. Save creates the Secret only if Load found none, and
// updates it only at the resourceVersion Load (or the last Save) saw; if the
// Secret changed in between, Save returns ErrConflict and keeps returning it
// until the next Load. Nothing is logged, and errors never quote the data:
// it holds private keys.
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
		return nil, errors.New("CA Secret store: no Kubernetes client")
	}
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("CA Secret store: want namespace/name, got %q/%q", namespace, name)
	}
	return &SecretStore{secrets: client.Secrets(namespace), namespace: namespace, name: name}, nil
}

// String names the Secret, for logs and errors.
func (s *SecretStore) String() string { return s.namespace + "/" + s.name }

// Load reads the Secret. A missing Secret is ErrNoState; one of another type
// or without SecretKey is an error naming both, never a fresh CA, so a typo
// in the data cannot make the control plane mint a new trust domain.
func (s *SecretStore) Load(ctx context.Context) (*State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secrets.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.last = nil
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("CA Secret %s: %w", s, err)
	}
	// Remember the version even if the contents are refused, so that any
	// later Save stays conditional on this read.
	s.last = sec
	if sec.Type != corev1.SecretTypeOpaque {
		return nil, fmt.Errorf("CA Secret %s: type %q, want %q", s, sec.Type, corev1.SecretTypeOpaque)
	}
	b, ok := sec.Data[SecretKey]
	if !ok {
		return nil, fmt.Errorf("CA Secret %s: data key %q missing", s, SecretKey)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("CA Secret %s: data key %q is empty", s, SecretKey)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("CA Secret %s: data key %q: %w", s, SecretKey, jsonErrorWithoutData(err))
	}
	return &st, nil
}

// Save writes st if the Secret is still as this store last saw it, else
// returns an error wrapping ErrConflict and writes nothing.
func (s *SecretStore) Save(ctx context.Context, st *State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("CA Secret %s: %w", s, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace, Labels: map[string]string{}},
			Type:       corev1.SecretTypeOpaque,
		}
		setSecretContents(sec, b)
		created, err := s.secrets.Create(ctx, sec, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			return fmt.Errorf("CA Secret %s: created by someone else since it was loaded: %w", s, ErrConflict)
		case err != nil:
			return fmt.Errorf("CA Secret %s: create: %w", s, err)
		}
		s.last = created
		return nil
	}
	// Update the object as read, keeping what others added (annotations,
	// owner references); its resourceVersion makes the write conditional.
	sec := s.last.DeepCopy()
	setSecretContents(sec, b)
	updated, err := s.secrets.Update(ctx, sec, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err):
		return fmt.Errorf("CA Secret %s: changed since resourceVersion %s: %w", s, s.last.ResourceVersion, ErrConflict)
	case apierrors.IsNotFound(err):
		// Recreating it here could race another replica's fresh CA; let the
		// caller reload and decide.
		return fmt.Errorf("CA Secret %s: deleted since it was loaded: %w", s, ErrConflict)
	case err != nil:
		return fmt.Errorf("CA Secret %s: update: %w", s, err)
	}
	s.last = updated
	return nil
}

// setSecretContents makes sec a CA Secret holding data: type, labels and the
// single key. Other data keys are dropped so no stale copy of a key lingers.
func setSecretContents(sec *corev1.Secret, data []byte) {
	sec.Type = corev1.SecretTypeOpaque
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	sec.Labels[SecretLabelPartOf] = "causeway"
	sec.Labels[SecretLabelComponent] = "ca"
	sec.Data = map[string][]byte{SecretKey: data}
	sec.StringData = nil
}

// jsonErrorWithoutData keeps the position of a JSON error but not the bytes
// around it: encoding/json quotes offending values in some errors, and here
// the values are private keys.
func jsonErrorWithoutData(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at byte %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("field %q: JSON %s where %s was expected", typ.Field, typ.Value, typ.Type)
	}
	return errors.New("invalid JSON")
}
