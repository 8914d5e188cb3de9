package ca

import (
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// IssueJWTSVID signs a JWT-SVID for id with the active authority's key: ES256
// (ES384 for P-384 keys), the key's kid in the header, typ JWT, and the claims
// JWT-SVID §3 requires (sub, aud, exp) plus iat. ttl <= 0 means the CA default.
func (c *CA) IssueJWTSVID(id spiffeid.ID, audience []string, ttl time.Duration) (string, error) {
	if err := c.checkMember(id); err != nil {
		return "", err
	}
	if len(audience) == 0 {
		return "", fmt.Errorf("JWT-SVID for %s: audience is empty", id)
	}
	if ttl <= 0 {
		ttl = c.opts.JWTTTL
	}
	a := c.active()
	alg := jose.ES256
	if c.opts.KeyType == KeyTypeECP384 {
		alg = jose.ES384
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: a.jwtKey, KeyID: a.jwtKID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("JWT-SVID for %s: %w", id, err)
	}
	now := c.opts.Now()
	claims := jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(ttl)),
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("JWT-SVID for %s: %w", id, err)
	}
	return tok, nil
}
