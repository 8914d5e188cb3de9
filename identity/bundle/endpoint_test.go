package bundle

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/identity/ca"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

func newCA(t *testing.T, td spiffeid.TrustDomain) *ca.CA {
	t.Helper()
	c, err := ca.New(context.Background(), ca.Options{TrustDomain: td, Store: ca.DirStore{Dir: t.TempDir()},
		RefreshHint: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startEndpoint serves c's bundle on a loopback port and returns its URL.
func startEndpoint(t *testing.T, c *ca.CA) string {
	t.Helper()
	svid, err := c.NewSVIDSource(ServerID(c.TrustDomain()), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := NewEndpoint(c.TrustDomain(), c, svid, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ep.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ep.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "https://" + l.Addr().String()
}

func TestEndpointFetchAndRotate(t *testing.T) {
	c := newCA(t, td)
	url := startEndpoint(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fetch := func(t *testing.T) *spiffebundle.Bundle {
		t.Helper()
		// https_spiffe: the endpoint's certificate is checked against the
		// bundle we already hold (bootstrap) and the expected server ID.
		b, err := federation.FetchBundle(ctx, td, url, federation.WithSPIFFEAuth(c, ServerID(td)))
		if err != nil {
			t.Fatalf("FetchBundle: %v", err)
		}
		return b
	}
	workload := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")

	first := fetch(t)
	seq1, ok := first.SequenceNumber()
	if !ok {
		t.Fatal("fetched bundle has no sequence number")
	}
	if hint, ok := first.RefreshHint(); !ok || hint != 30*time.Second {
		t.Errorf("refresh hint = %v, %v; want 30s", hint, ok)
	}
	svid, err := c.IssueX509SVID(workload, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, first); err != nil {
		t.Errorf("SVID does not verify against the fetched bundle: %v", err)
	}
	if err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	second := fetch(t)
	seq2, _ := second.SequenceNumber()
	if seq2 != seq1+1 {
		t.Errorf("sequence after rotation = %d, want %d", seq2, seq1+1)
	}
	if n := len(second.X509Authorities()); n != 2 {
		t.Errorf("bundle during overlap has %d roots, want 2", n)
	}
	renewed, err := c.IssueX509SVID(workload, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*x509svid.SVID{"pre-rotation": svid, "post-rotation": renewed} {
		if _, _, err := x509svid.Verify(s.Certificates, second); err != nil {
			t.Errorf("%s SVID does not verify against the fetched bundle: %v", name, err)
		}
	}
	if _, _, err := x509svid.Verify(renewed.Certificates, first); err == nil {
		t.Errorf("post-rotation SVID verified against the pre-rotation bundle")
	}
}

func TestEndpointRefusesWrongPeer(t *testing.T) {
	c := newCA(t, td)
	url := startEndpoint(t, c)
	other := newCA(t, td) // same name, different keys: an impostor
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name   string
		trust  *ca.CA
		server spiffeid.ID
	}{
		{"bootstrap bundle from another CA", other, ServerID(td)},
		{"unexpected server ID", c, spiffeid.RequireFromPath(td, "/spire/server")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := federation.FetchBundle(ctx, td, url, federation.WithSPIFFEAuth(tt.trust, tt.server)); err == nil {
				t.Errorf("FetchBundle succeeded")
			}
		})
	}
}

func TestSetNotifiesOnlyOnChange(t *testing.T) {
	t.Parallel()
	peer := newCA(t, spiffeid.RequireTrustDomainFromString("peer.test"))
	s := NewSet()
	steps := []struct {
		name   string
		do     func()
		woken  bool
		bundle int
	}{
		{"put new trust domain", func() { s.Put(peer.Bundle()) }, true, 1},
		{"put identical bundle", func() { s.Put(peer.Bundle()) }, false, 1},
		{"put rotated bundle", func() {
			if err := peer.Rotate(context.Background()); err != nil {
				t.Fatal(err)
			}
			s.Put(peer.Bundle())
		}, true, 1},
		{"remove unknown", func() { s.Remove(td) }, false, 1},
		{"remove", func() { s.Remove(peer.TrustDomain()) }, true, 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ch := s.Updated()
			st.do()
			select {
			case <-ch:
				if !st.woken {
					t.Errorf("woken without a change")
				}
			default:
				if st.woken {
					t.Errorf("not woken after a change")
				}
			}
			if n := len(s.Bundles()); n != st.bundle {
				t.Errorf("%d bundles, want %d", n, st.bundle)
			}
		})
	}
}
