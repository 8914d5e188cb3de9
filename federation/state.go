package federation

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// savedLink is one link in Options.StateFile: enough to trust and reach
// the peer again after a restart. Imports are not saved; the peer resends
// them on reconnect.
type savedLink struct {
	Cluster     string    `json:"cluster"`
	TrustDomain string    `json:"trustDomain"`
	PeerID      string    `json:"peerID"`
	Addrs       []string  `json:"addrs,omitempty"` // set when this side dials
	Bundle      string    `json:"bundle"`          // PEM roots, the newest the peer sent
	Since       time.Time `json:"since"`
}

type savedState struct {
	Links []savedLink `json:"links"`
}

// loadState restores the links saved in Options.StateFile: their bundles go
// back into the federated set, and links this side dials start dialling.
// A missing file is an empty state.
func (l *Links) loadState() error {
	if l.opts.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(l.opts.StateFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("federation: state %s: %w", l.opts.StateFile, err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("federation: state %s: %w", l.opts.StateFile, err)
	}
	for i, s := range st.Links {
		where := fmt.Sprintf("federation: state %s: links[%d] (%s)", l.opts.StateFile, i, s.Cluster)
		if err := validCluster(s.Cluster); err != nil {
			return fmt.Errorf("%s: cluster: %w", where, err)
		}
		td, err := spiffeid.TrustDomainFromString(s.TrustDomain)
		if err != nil {
			return fmt.Errorf("%s: trustDomain: %w", where, err)
		}
		id, err := spiffeid.FromString(s.PeerID)
		if err != nil || !id.MemberOf(td) {
			return fmt.Errorf("%s: peerID %q is not a SPIFFE ID in %s", where, s.PeerID, td)
		}
		roots, err := parseRoots([]byte(s.Bundle))
		if err != nil {
			return fmt.Errorf("%s: bundle: %w", where, err)
		}
		lk := l.addLink(s.Cluster, td, id, roots, s.Addrs)
		l.mu.Lock()
		lk.since = s.Since // pending until the peer is heard from
		l.mu.Unlock()
		if len(s.Addrs) > 0 {
			l.startDialler(lk, nil)
		}
		l.log.Info("federation: link restored", "peer", s.Cluster, "trustDomain", td.Name(), "dials", s.Addrs)
	}
	return nil
}

// saveState writes every link to Options.StateFile (0600, through a
// rename so a crash leaves the old file or the new one). Errors are logged:
// the links keep working, only a restart would lose them.
func (l *Links) saveState() {
	if l.opts.StateFile == "" {
		return
	}
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	st := savedState{Links: []savedLink{}}
	for _, lk := range l.links {
		st.Links = append(st.Links, savedLink{Cluster: lk.cluster, TrustDomain: lk.td.Name(), PeerID: lk.peerID.String(),
			Addrs: slices.Clone(lk.addrs), Bundle: string(lk.bundlePEM), Since: lk.since})
	}
	l.mu.Unlock()
	slices.SortFunc(st.Links, func(a, b savedLink) int {
		if a.Cluster < b.Cluster {
			return -1
		}
		return 1
	})
	b, _ := json.MarshalIndent(st, "", "  ") // strings and times: cannot fail
	if err := writeFileAtomic(l.opts.StateFile, b); err != nil {
		l.log.Error("federation: cannot save links; a restart would forget them", "file", l.opts.StateFile, "err", err)
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
