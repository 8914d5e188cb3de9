package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

type staticSource struct {
	svid   *x509svid.SVID
	bundle *x509bundle.Bundle
}

func (s staticSource) GetX509SVID() (*x509svid.SVID, error) { return s.svid, nil }
func (s staticSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.bundle.GetX509BundleForTrustDomain(td)
}

// TestPermissiveMode: with mTLS on at the destination, permissive mode lets
// a caller without an identity in (plaintext, no X-Forwarded-Client-Cert,
// any path), while a caller with an SVID still gets mTLS and the app sees
// its verified identity; the same destination in strict mode refuses the
// plaintext caller.
func TestPermissiveMode(t *testing.T) {
	ca := proxytest.NewCA(t, "cluster.local")
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	src := func(sa string) source {
		return staticSource{svid: ca.SVID(t, ca.ID("shop", sa), time.Time{}, time.Time{}), bundle: ca.Bundle()}
	}
	c := httpClient(t)

	perm := newBooksMeshMode(t, td, src("books"), spec.ModePermissive)
	plain := perm.caller(t, "nobody", nil)
	meshed := perm.caller(t, "thief", src("thief"))
	if code, body, xfcc := get(t, c, plain, "DELETE", "/admin"); code != 200 || xfcc != "" {
		t.Errorf("permissive, plaintext caller: %d %q xfcc %q; want 200 with no XFCC", code, body, xfcc)
	}
	code, body, xfcc := get(t, c, meshed, "DELETE", "/admin")
	if code != 200 || !strings.HasSuffix(xfcc, ";URI="+ca.ID("shop", "thief").String()) {
		t.Errorf("permissive, caller with an SVID: %d %q xfcc %q; want 200 over mTLS with its identity", code, body, xfcc)
	}

	strict := newBooksMeshMode(t, td, src("books"), spec.ModeStrict)
	plainStrict := strict.caller(t, "nobody", nil)
	if code, body, _ := get(t, c, plainStrict, "GET", "/books/1"); code == 200 {
		t.Errorf("strict, plaintext caller: %d %q; want refused", code, body)
	}
}
