package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/causeway-mesh/causeway/internal/kubesecret"
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
	SecretLabelPartOf    = kubesecret.LabelPartOf
	SecretLabelComponent = kubesecret.LabelComponent
)

// SecretStore keeps the State in one Kubernetes Secret (type Opaque, key
// SecretKey): the cluster-mode counterpart of DirStore, where RBAC on the
// Secret plays the part of the file's 0600 mode.
//
// Replicas never overwrite each other (internal/kubesecret): every write is
// conditional on what this store last read, and a Secret that changed in
// between makes Save return ErrConflict until the next Load. Nothing is
// logged, and errors never quote the data: it holds private keys.
type SecretStore struct {
	s *kubesecret.Store
}

// NewSecretStore returns a store for Secret namespace/name; client is
// typically kubernetes.Interface.CoreV1(). It makes no API call.
func NewSecretStore(client typedcorev1.SecretsGetter, namespace, name string) (*SecretStore, error) {
	ks, err := kubesecret.New(client, namespace, name, SecretKey, "ca", ErrConflict)
	if err != nil {
		return nil, fmt.Errorf("CA Secret store: %w", err)
	}
	return &SecretStore{s: ks}, nil
}

// String names the Secret, for logs and errors.
func (s *SecretStore) String() string { return s.s.Name() }

// Load reads the Secret. A missing Secret is ErrNoState; one of another type
// or without SecretKey is an error naming both, never a fresh CA, so a typo
// in the data cannot make the control plane mint a new trust domain.
func (s *SecretStore) Load(ctx context.Context) (*State, error) {
	b, found, err := s.s.Load(ctx)
	switch {
	case !found && err == nil:
		return nil, ErrNoState
	case err != nil:
		return nil, fmt.Errorf("CA Secret %s: %w", s, err)
	case len(b) == 0:
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
	if err := s.s.Save(ctx, b); err != nil {
		return fmt.Errorf("CA Secret %s: %w", s, err)
	}
	return nil
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
