package federation

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"
)

// tokenPrefix starts every encoded token, so a token pasted into the wrong
// place is recognisable and the format can change with the number.
const tokenPrefix = "causeway-peer-v1."

// Token is what `causeway link generate` prints: everything the other
// cluster needs to dial this one and prove it was invited. It is a bearer
// credential until it is used or expires, whichever comes first.
type Token struct {
	// Cluster and TrustDomain name the issuing cluster.
	Cluster     string `json:"cluster"`
	TrustDomain string `json:"trustDomain"`
	// Addrs are the issuer's federation stream addresses (host:port).
	Addrs []string `json:"addrs"`
	// Bundle is the issuer's trust bundle (PEM roots): the dialler
	// authenticates the issuer's server with it.
	Bundle string `json:"bundle"`
	// ID names the token at the issuer; Secret is its one-time key, 32
	// random bytes, never sent over the wire once issued (the dialler sends
	// an HMAC made with it).
	ID      string    `json:"id"`
	Secret  []byte    `json:"secret"`
	Expires time.Time `json:"expires"`
}

// Encode renders the token as one copy-pasteable line.
func (t Token) Encode() string {
	b, _ := json.Marshal(t) // plain struct of strings, bytes and a time: cannot fail
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes and validates an encoded token. It does not check the
// expiry: the caller compares Expires with its clock and the issuer checks
// again, since only the issuer's check counts.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("peering token: does not start with %q", tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return Token{}, fmt.Errorf("peering token: %w", err)
	}
	var t Token
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Token{}, fmt.Errorf("peering token: %w", err)
	}
	if err := t.validate(); err != nil {
		return Token{}, fmt.Errorf("peering token: %w", err)
	}
	return t, nil
}

func (t Token) validate() error {
	if err := validCluster(t.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(t.TrustDomain)
	if err != nil {
		return fmt.Errorf("trustDomain: %w", err)
	}
	if td.Name() != t.TrustDomain {
		return fmt.Errorf("trustDomain: %q is not in canonical form %q", t.TrustDomain, td.Name())
	}
	if len(t.Addrs) == 0 {
		return errors.New("addrs: empty")
	}
	for i, a := range t.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("addrs[%d]: %w", i, err)
		}
	}
	if _, err := parseRoots([]byte(t.Bundle)); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if b, err := hex.DecodeString(t.ID); err != nil || len(b) != 16 {
		return fmt.Errorf("id: want 32 hex digits, got %q", t.ID)
	}
	if len(t.Secret) != 32 {
		return fmt.Errorf("secret: want 32 bytes, got %d", len(t.Secret))
	}
	if t.Expires.IsZero() {
		return errors.New("expires: missing")
	}
	return nil
}

// validCluster accepts DNS labels: a cluster name becomes part of imported
// service names (<name>-<cluster>).
func validCluster(c string) error {
	if errs := validation.IsDNS1123Label(c); len(errs) > 0 {
		return fmt.Errorf("%q: %s", c, strings.Join(errs, "; "))
	}
	return nil
}

// parseRoots reads PEM CERTIFICATE blocks; at least one is required.
func parseRoots(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificates")
	}
	return out, nil
}

func encodeRoots(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// proof binds a peering attempt to the token's secret, the dialler's
// claimed names and bundle, and the certificate it presented in TLS, so a
// proof seen once cannot be replayed with other roots or another key.
func proof(secret []byte, tokenID, cluster, td string, bundlePEM, leafDER []byte) []byte {
	m := hmac.New(sha256.New, secret)
	bh := sha256.Sum256(bundlePEM)
	lh := sha256.Sum256(leafDER)
	for _, part := range [][]byte{[]byte("causeway-peering-v1"), []byte(tokenID), []byte(cluster), []byte(td), bh[:], lh[:]} {
		// Length-prefix each part so no two different tuples hash alike.
		var n [4]byte
		n[0], n[1], n[2], n[3] = byte(len(part)>>24), byte(len(part)>>16), byte(len(part)>>8), byte(len(part))
		m.Write(n[:])
		m.Write(part)
	}
	return m.Sum(nil)
}

// issued is a token this side generated, kept until it is used or expires.
type issued struct {
	secret  []byte
	expires time.Time
	usedBy  string // cluster that used it; "" while unused
	usedAt  time.Time
}

func newTokenID() (id string, secret []byte, err error) {
	b := make([]byte, 16+32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	return hex.EncodeToString(b[:16]), b[16:], nil
}

// checkIssued says why a peering attempt with token id must be refused, or
// nil. A used or expired token stays refused with its own reason, so an
// operator sees "already used" rather than "unknown".
func checkIssued(tok *issued, id string, now time.Time) error {
	switch {
	case tok == nil:
		return fmt.Errorf("peering token %s is unknown here (generated by another control plane, or before a restart)", id)
	case tok.usedBy != "":
		return fmt.Errorf("peering token %s was already used by cluster %q at %s; generate a new one", id, tok.usedBy, tok.usedAt.UTC().Format(time.RFC3339))
	case !now.Before(tok.expires):
		return fmt.Errorf("peering token %s expired at %s; generate a new one", id, tok.expires.UTC().Format(time.RFC3339))
	}
	return nil
}
