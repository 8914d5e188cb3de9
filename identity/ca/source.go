package ca

import (
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// SVIDSource holds one identity's current X.509-SVID and renews it lazily: a
// call after the SVID's half-life, or after the CA rotated, gets a fresh one.
// It implements x509svid.Source, so the CA's own servers (the bundle endpoint)
// and the Workload API's per-identity cache share one renewal rule.
type SVIDSource struct {
	ca  *CA
	id  spiffeid.ID
	ttl time.Duration

	mu       sync.Mutex
	svid     *x509svid.SVID
	renewAt  time.Time
	issuerID string
}

// NewSVIDSource returns a source for id with the given lifetime (<= 0: the CA default).
func (c *CA) NewSVIDSource(id spiffeid.ID, ttl time.Duration) (*SVIDSource, error) {
	if err := c.checkMember(id); err != nil {
		return nil, err
	}
	return &SVIDSource{ca: c, id: id, ttl: ttl}, nil
}

// ID returns the identity this source issues for.
func (s *SVIDSource) ID() spiffeid.ID { return s.id }

// GetX509SVID implements x509svid.Source.
func (s *SVIDSource) GetX509SVID() (*x509svid.SVID, error) {
	svid, _, err := s.Current()
	return svid, err
}

// Current returns the SVID to hand out now and when it should next be
// renewed: half-way between issuance and expiry (SPIRE's rule), measured from
// the issuing time rather than NotBefore, which is backdated.
func (s *SVIDSource) Current() (*x509svid.SVID, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.ca.Now()
	active := s.ca.ActiveID()
	if s.svid != nil && now.Before(s.renewAt) && s.issuerID == active {
		return s.svid, s.renewAt, nil
	}
	svid, err := s.ca.IssueX509SVID(s.id, s.ttl)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("renew %s: %w", s.id, err)
	}
	s.svid, s.issuerID = svid, active
	s.renewAt = now.Add(svid.Certificates[0].NotAfter.Sub(now) / 2)
	return s.svid, s.renewAt, nil
}
