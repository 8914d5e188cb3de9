package proxytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// CA is a tiny test certificate authority for one trust domain: an ECDSA
// P-256 root that signs X.509-SVIDs directly. Production SVIDs come from
// identity/ (or SPIRE) through the Workload API; tests of the proxy only need
// valid and deliberately invalid ones.
type CA struct {
	TD   spiffeid.TrustDomain
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a CA for trust domain td ("cluster.local").
func NewCA(t testing.TB, td string) *CA {
	t.Helper()
	trust, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"causeway test"}, CommonName: td + " root"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{trust.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{TD: trust, cert: cert, key: key}
}

// Bundle is the CA's trust bundle (an x509bundle.Source).
func (ca *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.TD, []*x509.Certificate{ca.cert})
}

// ID is spiffe://<td>/ns/<ns>/sa/<sa>.
func (ca *CA) ID(ns, sa string) spiffeid.ID {
	id, err := spiffeid.FromSegments(ca.TD, "ns", ns, "sa", sa)
	if err != nil {
		panic(err)
	}
	return id
}

// SVID signs an X.509-SVID for id valid from notBefore to notAfter (zero
// values: an hour ago to an hour from now). It is an x509svid.Source.
func (ca *CA) SVID(t testing.TB, id spiffeid.ID, notBefore, notAfter time.Time) *x509svid.SVID {
	t.Helper()
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Hour)
	}
	if notAfter.IsZero() {
		notAfter = time.Now().Add(time.Hour)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

// RotatingSource is an x509svid.Source whose SVID a test can replace, as a
// Workload API client's is on renewal.
type RotatingSource struct{ svid atomic.Pointer[x509svid.SVID] }

// NewRotatingSource starts with s.
func NewRotatingSource(s *x509svid.SVID) *RotatingSource {
	r := &RotatingSource{}
	r.svid.Store(s)
	return r
}

// Set replaces the SVID handed out from now on.
func (r *RotatingSource) Set(s *x509svid.SVID) { r.svid.Store(s) }

// GetX509SVID implements x509svid.Source.
func (r *RotatingSource) GetX509SVID() (*x509svid.SVID, error) { return r.svid.Load(), nil }
