package inject

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"
)

// WebhookCA is a self-signed CA that only signs the webhook's serving
// certificate; its certificate is what goes into the webhook
// configuration's caBundle. It is separate from the mesh CA (identity/ca)
// on purpose: that one issues SPIFFE SVIDs (URI SANs, short-lived), while
// the apiserver wants a DNS name for the webhook Service, and trusting the
// mesh CA for webhook calls would let any workload SVID pass as the webhook.
type WebhookCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// NewWebhookCA makes a CA valid for ttl from now.
func NewWebhookCA(now time.Time, ttl time.Duration) (*WebhookCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		// The serial in the name tells two replicas' CAs apart in a bundle.
		Subject:               pkix.Name{Organization: []string{"Causeway"}, CommonName: "causeway sidecar-injector CA " + serial.Text(16)[:8]},
		NotBefore:             now.Add(-time.Minute), // tolerate small clock skew
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &WebhookCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// PEM is the CA certificate, for caBundle.
func (ca *WebhookCA) PEM() []byte { return ca.pem }

// Certificate is the CA certificate.
func (ca *WebhookCA) Certificate() *x509.Certificate { return ca.cert }

// Issue signs a serving certificate for dnsNames and ips, valid for ttl from
// now but never past the CA.
func (ca *WebhookCA) Issue(now time.Time, ttl time.Duration, dnsNames []string, ips []net.IP) (*tls.Certificate, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, errors.New("inject: serving certificate: no DNS name or IP")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"Causeway"}, CommonName: cn},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("inject: serving certificate for %v: %w", dnsNames, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ServingConfig is a TLS config that presents a certificate from ca for
// dnsNames and ips, reissued when a third of its lifetime is left, so a
// long-running control plane never serves an expired one.
func (ca *WebhookCA) ServingConfig(ttl time.Duration, dnsNames []string, ips []net.IP) (*tls.Config, error) {
	r := &renewing{ca: ca, ttl: ttl, dns: dnsNames, ips: ips, now: time.Now}
	if _, err := r.get(nil); err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil
}

type renewing struct {
	ca  *WebhookCA
	ttl time.Duration
	dns []string
	ips []net.IP
	now func() time.Time

	mu   sync.Mutex // guards cert; held while reissuing, so callers wait for one issue
	cert *tls.Certificate
}

func (r *renewing) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if c := r.cert; c != nil && now.Before(c.Leaf.NotAfter.Add(-c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/3)) {
		return c, nil
	}
	c, err := r.ca.Issue(now, r.ttl, r.dns, r.ips)
	if err != nil {
		return nil, err
	}
	r.cert = c
	return c, nil
}

func randSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// ServiceDNSNames are the names the apiserver may use for a webhook Service
// (it dials <name>.<namespace>.svc and checks that name).
func ServiceDNSNames(name, namespace string) []string {
	return []string{name + "." + namespace + ".svc", name + "." + namespace + ".svc.cluster.local", name + "." + namespace, name}
}
