package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoState is returned by Store.Load when nothing has been saved yet; New
// then creates a fresh trust domain.
var ErrNoState = errors.New("no CA state stored")

// Store persists the CA's State. The directory store is used in local mode;
// a Kubernetes Secret store (cluster mode) implements the same two calls.
// Save must be atomic: a reader never sees half of a state.
type Store interface {
	Load(ctx context.Context) (*State, error)
	Save(ctx context.Context, s *State) error
}

// State is everything the CA needs to restart with the same trust domain:
// every authority still trusted and the bundle sequence number. Keys are PKCS#8
// PEM, certificates PEM; nothing here is safe to publish.
type State struct {
	TrustDomain string `json:"trustDomain"`
	// Sequence is the bundle sequence number; it grows on every change of the
	// trusted set (SPIFFE Trust Domain and Bundle §4.1.2).
	Sequence uint64 `json:"sequence"`
	// Authorities, newest first: possibly one Prepared (trusted, not yet
	// signing), then the active one, then older ones trusted until RetireAt.
	Authorities []AuthorityState `json:"authorities"`
}

// AuthorityState is one root + intermediate + JWT key generation.
type AuthorityState struct {
	RootCert         string    `json:"rootCert"`
	RootKey          string    `json:"rootKey"`
	IntermediateCert string    `json:"intermediateCert"`
	IntermediateKey  string    `json:"intermediateKey"`
	JWTKey           string    `json:"jwtKey"`
	JWTKeyID         string    `json:"jwtKeyID"`
	CreatedAt        time.Time `json:"createdAt"`
	Prepared         bool      `json:"prepared,omitempty"`
	// RetireAt is zero until a successor is activated; then this authority
	// stays in the bundle until RetireAt so that SVIDs it signed keep verifying
	// while workloads pick up new ones.
	RetireAt time.Time `json:"retireAt,omitzero"`
}

// DirStore keeps the state in <Dir>/ca.json, mode 0600, in a 0700 directory.
// Several processes may share a directory (`causeway control` and
// `causeway identity serve --ca-dir`): the CA saves through saveIf, which
// holds an exclusive flock on <Dir>/.ca.lock while it checks that the file
// still holds what that CA last read or wrote, so two processes rotating at
// the same moment cannot overwrite each other; the loser gets ErrConflict
// and reloads.
type DirStore struct {
	Dir string
}

const stateFile = "ca.json"

// Path returns the file DirStore reads and writes.
func (d DirStore) Path() string { return filepath.Join(d.Dir, stateFile) }

// Load reads the state; it refuses a file readable by group or others, since
// it holds private keys.
func (d DirStore) Load(_ context.Context) (*State, error) {
	p := d.Path()
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("CA store %s: %w", p, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("CA store %s: mode %#o lets others read private keys; want 0600", p, perm)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("CA store %s: %w", p, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("CA store %s: %w", p, err)
	}
	return &s, nil
}

// saveIf writes s only if current (the state now in the file, nil when
// there is none) passes the check, all under an exclusive lock of the
// directory; otherwise it returns an error wrapping ErrConflict.
func (d DirStore) saveIf(ctx context.Context, s *State, check func(current *State) bool) error {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("CA store %s: %w", d.Dir, err)
	}
	lockPath := filepath.Join(d.Dir, lockFile)
	lf, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("CA store %s: %w", lockPath, err)
	}
	defer lf.Close() // releases the lock
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("CA store %s: lock: %w", lockPath, err)
	}
	current, err := d.Load(ctx)
	if errors.Is(err, ErrNoState) {
		current, err = nil, nil
	}
	if err != nil {
		return err
	}
	if !check(current) {
		return fmt.Errorf("CA store %s: changed by another process since it was read: %w", d.Path(), ErrConflict)
	}
	return d.Save(ctx, s)
}

// lockFile serialises saveIf across processes sharing Dir.
const lockFile = ".ca.lock"

// Save writes the state to a temporary file created 0600 and renames it into
// place, so a crash leaves either the old or the new state.
func (d DirStore) Save(_ context.Context, s *State) error {
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("CA store %s: %w", d.Dir, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("CA store %s: %w", d.Path(), err)
	}
	f, err := os.CreateTemp(d.Dir, ".ca-*.json") // CreateTemp uses mode 0600
	if err != nil {
		return fmt.Errorf("CA store %s: %w", d.Dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("CA store %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("CA store %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("CA store %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, d.Path()); err != nil {
		return fmt.Errorf("CA store %s: %w", d.Path(), err)
	}
	return nil
}
