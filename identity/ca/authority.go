package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	neturl "net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// KeyType selects the curve of every key the CA makes.
type KeyType string

const (
	KeyTypeECP256 KeyType = "ec-p256" // default, as SPIRE's
	KeyTypeECP384 KeyType = "ec-p384"
)

func (k KeyType) generate() (*ecdsa.PrivateKey, error) {
	switch k {
	case "", KeyTypeECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyTypeECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q: want %s or %s", k, KeyTypeECP256, KeyTypeECP384)
}

// authority is one parsed generation: a self-signed root, the intermediate it
// signed (which signs SVIDs), and the JWT signing key.
type authority struct {
	root     *x509.Certificate
	rootKey  crypto.Signer
	inter    *x509.Certificate
	interKey crypto.Signer
	jwtKey   crypto.Signer
	jwtKID   string
	created  time.Time
	prepared bool      // in the bundle but not signing yet
	retireAt time.Time // zero until a successor is activated
}

// organization is the subject O of every certificate, so an operator can tell
// Causeway's certificates from SPIRE's in a chain dump.
const organization = "Causeway"

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// newAuthority makes a root valid for ttl and an intermediate valid as long.
// Both carry the trust domain's ID as their URI SAN, as X509-SVID §3.2 allows
// for signing certificates; the intermediate may not sign other CAs.
func newAuthority(td spiffeid.TrustDomain, kt KeyType, now time.Time, ttl time.Duration) (*authority, error) {
	rootKey, err := kt.generate()
	if err != nil {
		return nil, err
	}
	interKey, err := kt.generate()
	if err != nil {
		return nil, err
	}
	jwtKey, err := kt.generate()
	if err != nil {
		return nil, err
	}
	tdURL := td.ID().URL()
	notBefore := now.Add(-backdate)
	notAfter := now.Add(ttl)

	rs, err := serial()
	if err != nil {
		return nil, err
	}
	rootTmpl := &x509.Certificate{
		SerialNumber:          rs,
		Subject:               pkix.Name{Organization: []string{organization}, CommonName: "Causeway root CA " + td.Name()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*neturl.URL{tdURL},
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("create root CA for %s: %w", td, err)
	}
	root, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, err
	}

	is, err := serial()
	if err != nil {
		return nil, err
	}
	interTmpl := &x509.Certificate{
		SerialNumber:          is,
		Subject:               pkix.Name{Organization: []string{organization}, CommonName: "Causeway intermediate CA " + td.Name()},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		URIs:                  []*neturl.URL{tdURL},
	}
	interDER, err := x509.CreateCertificate(rand.Reader, interTmpl, root, interKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("create intermediate CA for %s: %w", td, err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		return nil, err
	}
	kid, err := keyID(jwtKey.Public())
	if err != nil {
		return nil, err
	}
	return &authority{root: root, rootKey: rootKey, inter: inter, interKey: interKey,
		jwtKey: jwtKey, jwtKID: kid, created: now}, nil
}

// keyID derives a JWT key ID from the public key (its SPKI SHA-256, truncated),
// so the same key always gets the same kid and different keys never collide in practice.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:16]), nil
}

func (a *authority) state() (AuthorityState, error) {
	rk, err := keyPEM(a.rootKey)
	if err != nil {
		return AuthorityState{}, err
	}
	ik, err := keyPEM(a.interKey)
	if err != nil {
		return AuthorityState{}, err
	}
	jk, err := keyPEM(a.jwtKey)
	if err != nil {
		return AuthorityState{}, err
	}
	return AuthorityState{
		RootCert: certPEM(a.root), RootKey: rk,
		IntermediateCert: certPEM(a.inter), IntermediateKey: ik,
		JWTKey: jk, JWTKeyID: a.jwtKID,
		CreatedAt: a.created, Prepared: a.prepared, RetireAt: a.retireAt,
	}, nil
}

func parseAuthority(s AuthorityState) (*authority, error) {
	var a authority
	var err error
	if a.root, err = parseCertPEM(s.RootCert); err != nil {
		return nil, fmt.Errorf("rootCert: %w", err)
	}
	if a.rootKey, err = parseKeyPEM(s.RootKey); err != nil {
		return nil, fmt.Errorf("rootKey: %w", err)
	}
	if a.inter, err = parseCertPEM(s.IntermediateCert); err != nil {
		return nil, fmt.Errorf("intermediateCert: %w", err)
	}
	if a.interKey, err = parseKeyPEM(s.IntermediateKey); err != nil {
		return nil, fmt.Errorf("intermediateKey: %w", err)
	}
	if a.jwtKey, err = parseKeyPEM(s.JWTKey); err != nil {
		return nil, fmt.Errorf("jwtKey: %w", err)
	}
	if err := a.root.CheckSignatureFrom(a.root); err != nil || !a.root.IsCA {
		return nil, fmt.Errorf("rootCert: not a self-signed CA certificate")
	}
	if err := a.inter.CheckSignatureFrom(a.root); err != nil {
		return nil, fmt.Errorf("intermediateCert: not signed by rootCert: %w", err)
	}
	// A key that does not match its certificate would only fail at the first
	// signature; catch it when the state is loaded.
	if !publicKeyEqual(a.rootKey.Public(), a.root.PublicKey) {
		return nil, fmt.Errorf("rootKey: does not match rootCert")
	}
	if !publicKeyEqual(a.interKey.Public(), a.inter.PublicKey) {
		return nil, fmt.Errorf("intermediateKey: does not match intermediateCert")
	}
	if s.JWTKeyID == "" {
		return nil, fmt.Errorf("jwtKeyID: empty")
	}
	a.jwtKID, a.created, a.prepared, a.retireAt = s.JWTKeyID, s.CreatedAt, s.Prepared, s.RetireAt
	return &a, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func keyPEM(k crypto.Signer) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseKeyPEM(s string) (crypto.Signer, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return signer, nil
}
