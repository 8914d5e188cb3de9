// Package kubesecret keeps one JSON document in one key of a Kubernetes
// Secret, written only on top of what was last read: the storage that
// identity/ca's and federation's Secret stores share. Replicas never
// overwrite each other: Save creates the Secret only if Load found none, and
// updates it only at the resourceVersion Load (or the last Save) saw;
// otherwise it returns an error wrapping the store's Conflict error until
// the next Load. Errors never quote the data.
//
// Enters: a client-go SecretsGetter, the Secret's namespace and name, the
// data key and the app.kubernetes.io/component label. Leaves: the key's
// bytes. No goroutines; a Store is safe for concurrent use.
package kubesecret

import (
	"context"
	"errors"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// Labels put on the Secret so that `kubectl get secrets -l` finds it.
const (
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelComponent = "app.kubernetes.io/component"
)

// Store is one Secret holding one data key.
type Store struct {
	secrets   typedcorev1.SecretInterface
	namespace string
	name      string
	key       string
	component string
	conflict  error

	mu   sync.Mutex
	last *corev1.Secret // as last read or written; nil: believed absent
}

// New returns a store for Secret namespace/name holding data under key,
// labelled with component; conflict is the error Save wraps when the Secret
// changed since it was read. It makes no API call.
func New(client typedcorev1.SecretsGetter, namespace, name, key, component string, conflict error) (*Store, error) {
	if client == nil {
		return nil, errors.New("no Kubernetes client")
	}
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("want namespace/name, got %q/%q", namespace, name)
	}
	return &Store{secrets: client.Secrets(namespace), namespace: namespace, name: name, key: key,
		component: component, conflict: conflict}, nil
}

// Name is namespace/name.
func (s *Store) Name() string { return s.namespace + "/" + s.name }

// Load reads the Secret and returns the key's bytes; found is false when
// the Secret does not exist. A Secret of another type or without the key is
// an error naming both. The Secret's version is remembered even when its
// contents are refused, so any later Save stays conditional on this read.
func (s *Store) Load(ctx context.Context) (data []byte, found bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.secrets.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s.last = nil
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	s.last = sec
	if sec.Type != corev1.SecretTypeOpaque {
		return nil, true, fmt.Errorf("type %q, want %q", sec.Type, corev1.SecretTypeOpaque)
	}
	b, ok := sec.Data[s.key]
	if !ok {
		return nil, true, fmt.Errorf("data key %q missing", s.key)
	}
	return b, true, nil
}

// Save writes data if the Secret is still as this store last saw it, else
// returns an error wrapping the conflict error and writes nothing.
func (s *Store) Save(ctx context.Context, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace}}
		s.fill(sec, data)
		created, err := s.secrets.Create(ctx, sec, metav1.CreateOptions{})
		switch {
		case apierrors.IsAlreadyExists(err):
			return fmt.Errorf("created by someone else since it was loaded: %w", s.conflict)
		case err != nil:
			return fmt.Errorf("create: %w", err)
		}
		s.last = created
		return nil
	}
	// Update the object as read, keeping what others added (annotations,
	// owner references); its resourceVersion makes the write conditional.
	sec := s.last.DeepCopy()
	s.fill(sec, data)
	updated, err := s.secrets.Update(ctx, sec, metav1.UpdateOptions{})
	switch {
	case apierrors.IsConflict(err):
		return fmt.Errorf("changed since resourceVersion %s: %w", s.last.ResourceVersion, s.conflict)
	case apierrors.IsNotFound(err):
		// Recreating it here could race another replica's fresh write; the
		// caller reloads and decides.
		return fmt.Errorf("deleted since it was loaded: %w", s.conflict)
	case err != nil:
		return fmt.Errorf("update: %w", err)
	}
	s.last = updated
	return nil
}

// fill makes sec an Opaque, labelled Secret holding data under the one key;
// other data keys are dropped so no stale copy lingers.
func (s *Store) fill(sec *corev1.Secret, data []byte) {
	sec.Type = corev1.SecretTypeOpaque
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	sec.Labels[LabelPartOf] = "causeway"
	sec.Labels[LabelComponent] = s.component
	sec.Data = map[string][]byte{s.key: data}
	sec.StringData = nil
}
