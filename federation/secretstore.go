package federation

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/causeway-mesh/causeway/internal/kubesecret"
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
// identity/ca's SecretStore (both are internal/kubesecret): Save creates the
// Secret only if Load found none and updates it only at the resourceVersion
// Load (or the last Save) saw; otherwise it returns ErrConflict until the
// next Load.
type SecretStore struct {
	s *kubesecret.Store
}

// NewSecretStore returns a store for Secret namespace/name; client is
// typically kubernetes.Interface.CoreV1(). It makes no API call.
func NewSecretStore(client typedcorev1.SecretsGetter, namespace, name string) (*SecretStore, error) {
	ks, err := kubesecret.New(client, namespace, name, SecretKey, "federation", ErrConflict)
	if err != nil {
		return nil, fmt.Errorf("federation Secret store: %w", err)
	}
	return &SecretStore{s: ks}, nil
}

// String names the Secret, for logs and errors.
func (s *SecretStore) String() string { return "Secret " + s.s.Name() }

// Load reads the Secret. A missing Secret is an empty State (no link yet,
// or every link removed before the first save); one of another type or
// without SecretKey is an error naming both, never an empty State, so a
// damaged Secret cannot make followers drop every peer's bundle.
func (s *SecretStore) Load(ctx context.Context) (*State, error) {
	b, found, err := s.s.Load(ctx)
	if err != nil {
		return nil, err
	}
	if !found {
		return &State{}, nil
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
	if err := s.s.Save(ctx, b); err != nil {
		return fmt.Errorf("%s: %w", s, err)
	}
	return nil
}
