package federation

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// State is what a Store holds: every link, enough to trust and reach the
// peer again after a restart, and what a follower (the node agent's
// Workload API) needs to hand the peers' bundles to workloads. Imports are
// not saved; the peer resends them on reconnect.
type State struct {
	Links []SavedLink `json:"links"`
}

// SavedLink is one link in a State.
type SavedLink struct {
	Cluster     string    `json:"cluster"`
	TrustDomain string    `json:"trustDomain"`
	PeerID      string    `json:"peerID"`
	Addrs       []string  `json:"addrs,omitempty"` // set when this side dials
	Bundle      string    `json:"bundle"`          // PEM roots, the newest the peer sent
	Since       time.Time `json:"since"`
}

// Store keeps the State of one cluster's links. Links writes it on every
// change and reads it once in New; followers (BundleFollower) only read.
type Store interface {
	// Load returns the stored State; nothing stored yet is an empty State
	// and no error.
	Load(ctx context.Context) (*State, error)
	// Save replaces the stored State. A Store shared by processes refuses a
	// write over a State it has not read with an error wrapping
	// ErrConflict, and writes nothing.
	Save(ctx context.Context, st *State) error
	// String names the store (file path, Secret) in logs and errors.
	String() string
}

// ErrConflict means the stored State changed since this store last read it:
// another process wrote it. Nothing was written.
var ErrConflict = errors.New("federation state changed in the store since it was loaded")

// FileStore keeps the State in one JSON file, written 0600 through a rename
// so that a reader (a crash, or a follower polling it) sees the old file or
// the new one, never half of one. One writer per file: it does not detect
// another writer.
type FileStore struct{ Path string }

func (f FileStore) String() string { return f.Path }

// Load reads the file; a missing file is an empty State.
func (f FileStore) Load(context.Context) (*State, error) {
	b, err := os.ReadFile(f.Path)
	if os.IsNotExist(err) {
		return &State{}, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Save writes the file (0600, atomic rename).
func (f FileStore) Save(_ context.Context, st *State) error {
	b, _ := json.MarshalIndent(st, "", "  ") // strings and times: cannot fail
	return writeFileAtomic(f.Path, b)
}

// restored is one SavedLink checked and parsed.
type restored struct {
	saved  SavedLink
	td     spiffeid.TrustDomain
	peerID spiffeid.ID
	roots  []*x509.Certificate
}

// decodeState checks every link of st; the error names the store, the
// link's index and cluster, and the field. One bad link refuses the whole
// State: a follower keeps its last good bundles, and New fails rather than
// forgetting a peer silently.
func decodeState(store Store, st *State) ([]restored, error) {
	out := make([]restored, 0, len(st.Links))
	seen := map[spiffeid.TrustDomain]string{}
	for i, s := range st.Links {
		where := fmt.Sprintf("federation: state %s: links[%d] (%s)", store, i, s.Cluster)
		if err := validCluster(s.Cluster); err != nil {
			return nil, fmt.Errorf("%s: cluster: %w", where, err)
		}
		td, err := spiffeid.TrustDomainFromString(s.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("%s: trustDomain: %w", where, err)
		}
		if other, dup := seen[td]; dup {
			return nil, fmt.Errorf("%s: trustDomain %s is also cluster %s's", where, td, other)
		}
		seen[td] = s.Cluster
		id, err := spiffeid.FromString(s.PeerID)
		if err != nil || !id.MemberOf(td) {
			return nil, fmt.Errorf("%s: peerID %q is not a SPIFFE ID in %s", where, s.PeerID, td)
		}
		roots, err := parseRoots([]byte(s.Bundle))
		if err != nil {
			return nil, fmt.Errorf("%s: bundle: %w", where, err)
		}
		out = append(out, restored{saved: s, td: td, peerID: id, roots: roots})
	}
	return out, nil
}

// storeTimeout bounds one Load or Save (a Kubernetes API call for a
// SecretStore), so a hung apiserver cannot hold the federation's locks.
const storeTimeout = 15 * time.Second

// loadState restores the links saved in the store: their bundles go back
// into the federated set, and links this side dials start dialling.
func (l *Links) loadState() error {
	if l.store == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
	defer cancel()
	st, err := l.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("federation: state %s: %w", l.store, err)
	}
	links, err := decodeState(l.store, st)
	if err != nil {
		return err
	}
	for _, r := range links {
		lk := l.addLink(r.saved.Cluster, r.td, r.peerID, r.roots, r.saved.Addrs)
		l.mu.Lock()
		lk.since = r.saved.Since // pending until the peer is heard from
		l.mu.Unlock()
		if len(r.saved.Addrs) > 0 {
			l.startDialler(lk, nil)
		}
		l.log.Info("federation: link restored", "peer", r.saved.Cluster, "trustDomain", r.td.Name(), "dials", r.saved.Addrs, "store", l.store.String())
	}
	return nil
}

// saveState writes every link to the store. Errors are logged: the links
// keep working, only a restart (and followers) would miss the change.
//
// A conflict means another process wrote the store since this one read it
// (a control plane replica starting during a rolling update). This process
// runs these links, so its State is written over the newer one, but only
// after reading it, so the write stays conditional and a third writer is
// still detected; the overwrite is logged.
func (l *Links) saveState() {
	if l.store == nil {
		return
	}
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	st := &State{Links: []SavedLink{}}
	for _, lk := range l.links {
		st.Links = append(st.Links, SavedLink{Cluster: lk.cluster, TrustDomain: lk.td.Name(), PeerID: lk.peerID.String(),
			Addrs: slices.Clone(lk.addrs), Bundle: string(lk.bundlePEM), Since: lk.since})
	}
	l.mu.Unlock()
	slices.SortFunc(st.Links, func(a, b SavedLink) int { return strings.Compare(a.Cluster, b.Cluster) })
	// Not l.ctx: the last save (a link dropped while closing) must still
	// reach the store.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	err := l.store.Save(ctx, st)
	if errors.Is(err, ErrConflict) {
		l.log.Warn("federation: state written by another process since it was read; replacing it with this process's links", "store", l.store.String(), "err", err)
		if _, err = l.store.Load(ctx); err == nil {
			err = l.store.Save(ctx, st)
		}
	}
	if err != nil {
		l.log.Error("federation: cannot save links; a restart and the Workload API's followers would miss this change", "store", l.store.String(), "err", err)
	}
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
