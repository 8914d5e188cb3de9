package integration

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/identity/spiretest"
)

var quiet = slog.New(slog.DiscardHandler)

// TestProxiesWithSPIRESVIDs runs Causeway proxies unchanged against a real
// SPIRE server and agent (join-token node attestation, unix workload
// attestor): their SVIDs come from the agent's Workload API only, they do
// mTLS with each other, and the destination enforces the TrafficTarget by
// the SPIRE-issued caller identity.
func TestProxiesWithSPIRESVIDs(t *testing.T) {
	s := spiretest.Start(t, spiretest.Options{})
	books, web, thief := id(t, s.TrustDomain, "books"), id(t, s.TrustDomain, "web"), id(t, s.TrustDomain, "thief")
	for _, sid := range []string{"books", "web", "thief"} {
		s.RegisterUID(t, id(t, s.TrustDomain, sid), os.Getuid(), 10*time.Minute)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	s.WaitForSVIDs(t, ctx, books, web, thief)
	t.Logf("SPIRE issued 3 SVIDs %v after registration", time.Since(start).Round(time.Millisecond))

	m := newBooksMesh(t, s.TrustDomain, pickedSource(t, ctx, s.AgentAddr, books))
	webAddr := m.caller(t, "web", pickedSource(t, ctx, s.AgentAddr, web))
	thiefAddr := m.caller(t, "thief", pickedSource(t, ctx, s.AgentAddr, thief))
	c := httpClient(t)

	cases := []struct {
		name, addr, method, path string
		want                     int
	}{
		{"allowed route", webAddr, "GET", "/books/1", 200},
		{"denied path", webAddr, "GET", "/admin", 403},
		{"denied method", webAddr, "POST", "/books/1", 403},
		{"identity no TrafficTarget names", thiefAddr, "GET", "/books/1", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, xfcc := get(t, c, tc.addr, tc.method, tc.path)
			if code != tc.want {
				t.Fatalf("%s %s: %d %q, want %d", tc.method, tc.path, code, body, tc.want)
			}
			if code != 200 {
				return
			}
			// The app sees the SPIRE-issued identities of both ends.
			if !strings.HasPrefix(xfcc, "By="+books.String()+";") || !strings.HasSuffix(xfcc, ";URI="+web.String()) {
				t.Fatalf("X-Forwarded-Client-Cert %q, want By=%s ... URI=%s", xfcc, books, web)
			}
		})
	}
}
