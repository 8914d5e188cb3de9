package bundle

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Set is a concurrency-safe set of federated bundles, one per trust domain.
type Set struct {
	mu      sync.RWMutex
	bundles map[spiffeid.TrustDomain]*spiffebundle.Bundle
	updated chan struct{}
}

// NewSet returns a Set holding bundles.
func NewSet(bundles ...*spiffebundle.Bundle) *Set {
	s := &Set{bundles: map[spiffeid.TrustDomain]*spiffebundle.Bundle{}, updated: make(chan struct{})}
	for _, b := range bundles {
		s.bundles[b.TrustDomain()] = b.Clone()
	}
	return s
}

// Put adds or replaces the bundle of b's trust domain. Watchers are woken
// only if the contents changed, so a periodic refresh of an unchanged bundle
// does not make every workload stream resend.
func (s *Set) Put(b *spiffebundle.Bundle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.bundles[b.TrustDomain()]; ok && old.Equal(b) {
		return
	}
	s.bundles[b.TrustDomain()] = b.Clone()
	s.changedLocked()
}

// Remove drops a trust domain's bundle (unlink).
func (s *Set) Remove(td spiffeid.TrustDomain) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.bundles[td]; !ok {
		return
	}
	delete(s.bundles, td)
	s.changedLocked()
}

func (s *Set) changedLocked() {
	close(s.updated)
	s.updated = make(chan struct{})
}

// Updated returns a channel closed at the next change. Take it before
// reading Bundles so no change is missed.
func (s *Set) Updated() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.updated
}

// Bundles returns copies of every bundle, ordered by trust domain.
func (s *Set) Bundles() []*spiffebundle.Bundle {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*spiffebundle.Bundle, 0, len(s.bundles))
	for _, b := range s.bundles {
		out = append(out, b.Clone())
	}
	slices.SortFunc(out, func(a, b *spiffebundle.Bundle) int {
		return strings.Compare(a.TrustDomain().Name(), b.TrustDomain().Name())
	})
	return out
}

// GetBundleForTrustDomain implements spiffebundle.Source.
func (s *Set) GetBundleForTrustDomain(td spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.bundles[td]
	if !ok {
		return nil, fmt.Errorf("federated bundles: no bundle for trust domain %q", td)
	}
	return b.Clone(), nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Set) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b, err := s.GetBundleForTrustDomain(td)
	if err != nil {
		return nil, err
	}
	return b.X509Bundle(), nil
}
