package workloadapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	workload "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/identitytest"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestServesIdentityPerCaller: the test process is one caller; different
// tables make it a different workload, and a table without it refuses it.
func TestServesIdentityPerCaller(t *testing.T) {
	t.Parallel()
	c := identitytest.NewCA(t, td, nil)
	tests := []struct {
		name    string
		entries []attest.Entry
		want    string // empty: PermissionDenied
	}{
		{"uid maps to web", append(identitytest.Self(t, "shop/web", ""), identitytest.Other(t, "shop/orders")), "spiffe://cluster.local/ns/shop/sa/web"},
		{"same uid, other table, other identity", append([]attest.Entry{identitytest.Other(t, "shop/web")}, identitytest.Self(t, "shop/orders", "")...), "spiffe://cluster.local/ns/shop/sa/orders"},
		{"gid entry", identitytest.Self(t, "", "shop/batch"), "spiffe://cluster.local/ns/shop/sa/batch"},
		{"unknown caller", []attest.Entry{identitytest.Other(t, "shop/web")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: tt.entries})
			ctx := ctxT(t)
			svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
			if tt.want == "" {
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("FetchX509SVID = %v, %v; want PermissionDenied", svid, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if svid.ID.String() != tt.want {
				t.Errorf("SVID ID = %s, want %s", svid.ID, tt.want)
			}
			if _, _, err := x509svid.Verify(svid.Certificates, c); err != nil {
				t.Errorf("served SVID does not verify: %v", err)
			}
		})
	}
}

// rawClient talks to the socket without go-spiffe, to check status codes and
// the security header exactly.
func rawClient(t *testing.T, addr string) workload.SpiffeWorkloadAPIClient {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+strings.TrimPrefix(addr, "unix://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return workload.NewSpiffeWorkloadAPIClient(conn)
}

// callAll makes every Workload API call once and returns each one's status code.
func callAll(ctx context.Context, c workload.SpiffeWorkloadAPIClient) map[string]codes.Code {
	out := map[string]codes.Code{}
	recv := func(name string, s interface{ Header() (metadata.MD, error) }, err error, next func() error) {
		if err == nil {
			err = next()
		}
		out[name] = status.Code(err)
	}
	x, err := c.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	recv("FetchX509SVID", x, err, func() error { _, err := x.Recv(); return err })
	xb, err := c.FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
	recv("FetchX509Bundles", xb, err, func() error { _, err := xb.Recv(); return err })
	jb, err := c.FetchJWTBundles(ctx, &workload.JWTBundlesRequest{})
	recv("FetchJWTBundles", jb, err, func() error { _, err := jb.Recv(); return err })
	_, err = c.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"a"}})
	out["FetchJWTSVID"] = status.Code(err)
	_, err = c.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "a", Svid: "x.y.z"})
	out["ValidateJWTSVID"] = status.Code(err)
	return out
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	c := identitytest.NewCA(t, td, nil)
	known := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/web", "")})
	unknown := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: []attest.Entry{identitytest.Other(t, "shop/web")}})
	withHeader := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
	}
	tests := []struct {
		name   string
		addr   string
		header bool
		want   codes.Code
	}{
		{"known caller without security header", known, false, codes.InvalidArgument},
		{"unknown caller", unknown, true, codes.PermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			if tt.header {
				ctx = withHeader(ctx)
			}
			for rpc, code := range callAll(ctx, rawClient(t, tt.addr)) {
				if code != tt.want {
					t.Errorf("%s: code %s, want %s", rpc, code, tt.want)
				}
			}
		})
	}
	t.Run("JWT-SVID for someone else's ID", func(t *testing.T) {
		_, err := rawClient(t, known).FetchJWTSVID(withHeader(ctxT(t)), &workload.JWTSVIDRequest{
			Audience: []string{"a"}, SpiffeId: "spiffe://cluster.local/ns/shop/sa/orders"})
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("err = %v, want PermissionDenied", err)
		}
	})
	t.Run("JWT-SVID without audience", func(t *testing.T) {
		_, err := rawClient(t, known).FetchJWTSVID(withHeader(ctxT(t)), &workload.JWTSVIDRequest{})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("err = %v, want InvalidArgument", err)
		}
	})
}

// TestX509SourceRenewalAndRotation: go-spiffe's X509Source sees the SVID
// renewed at half-life; preparing a new CA pushes its root, and activating it
// pushes an SVID it signed while the old root stays in the bundle.
func TestX509SourceRenewalAndRotation(t *testing.T) {
	t.Parallel()
	c := identitytest.NewCA(t, td, nil)
	const ttl = 6 * time.Second // renewed at 3 s: a loaded machine has 3 s of slack before expiry
	addr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/web", ""), SVIDTTL: ttl})
	ctx := ctxT(t)
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	first, err := src.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	next := func(t *testing.T) *x509svid.SVID {
		t.Helper()
		if err := src.WaitUntilUpdated(ctx); err != nil {
			t.Fatalf("no update pushed: %v", err)
		}
		s, err := src.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("renewed at half-life", func(t *testing.T) {
		renewed := next(t)
		if renewed.Certificates[0].Equal(first.Certificates[0]) {
			t.Fatalf("update carried the same certificate")
		}
		// Both certificates are backdated by the same amount, so the gap
		// between their NotBefore is the gap between issuances (to the
		// second): at least about half the TTL (renewal waits for half-life)
		// and less than the TTL (renewal beat expiry).
		gap := renewed.Certificates[0].NotBefore.Sub(first.Certificates[0].NotBefore)
		if gap < ttl/2-time.Second || gap >= ttl {
			t.Errorf("renewed %s after the first issue; want within [%s, %s)", gap, ttl/2-time.Second, ttl)
		}
		if _, _, err := x509svid.Verify(renewed.Certificates, src); err != nil {
			t.Errorf("renewed SVID does not verify against the pushed bundle: %v", err)
		}
	})
	t.Run("prepare pushes the new root, signer unchanged", func(t *testing.T) {
		before, _ := src.GetX509SVID()
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		for {
			b, err := src.GetX509BundleForTrustDomain(td)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.X509Authorities()) == 2 {
				break
			}
			next(t)
		}
		now, _ := src.GetX509SVID()
		if !now.Certificates[1].Equal(before.Certificates[1]) {
			t.Errorf("SVID chains to a new intermediate before Activate")
		}
	})
	t.Run("activate pushes an SVID from the new authority", func(t *testing.T) {
		before, _ := src.GetX509SVID()
		if err := c.Activate(ctx); err != nil {
			t.Fatal(err)
		}
		// The source keeps one pending "updated" signal: a half-life
		// renewal by the old authority pushed just before Activate (every
		// 3 s here) makes next return at once with that SVID. Read updates
		// until one chains elsewhere; if activation never pushes one, next
		// fails when ctx ends.
		rotated := next(t)
		for rotated.Certificates[1].Equal(before.Certificates[1]) {
			t.Logf("update still chains to the old intermediate (a renewal before the activation's push); waiting for the next")
			rotated = next(t)
		}
		b, err := src.GetX509BundleForTrustDomain(td)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(b.X509Authorities()); n != 2 {
			t.Errorf("pushed bundle has %d roots, want 2 during overlap", n)
		}
		if _, _, err := x509svid.Verify(before.Certificates, src); err != nil {
			t.Errorf("pre-rotation SVID rejected during overlap: %v", err)
		}
	})
}

func TestFederatedBundlesPushed(t *testing.T) {
	t.Parallel()
	c := identitytest.NewCA(t, td, nil)
	peerTD := spiffeid.RequireTrustDomainFromString("peer.test")
	peer := identitytest.NewCA(t, peerTD, nil)
	set := bundle.NewSet(peer.Bundle())
	addr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/web", ""), Federated: set})
	ctx := ctxT(t)
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	peerSVID, err := peer.IssueX509SVID(spiffeid.RequireFromPath(peerTD, "/ns/x/sa/y"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(peerSVID.Certificates, src); err != nil {
		t.Fatalf("peer SVID does not verify against federated bundle: %v", err)
	}
	if err := peer.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// The source keeps one pending "updated" signal, which an earlier push
	// may have left: each step reads updates until the state it waits for
	// is served, and fails when ctx ends if it never is.
	set.Put(peer.Bundle())
	for {
		if err := src.WaitUntilUpdated(ctx); err != nil {
			t.Fatalf("federated bundle after peer rotation not served with 2 roots: %v", err)
		}
		b, err := src.GetX509BundleForTrustDomain(peerTD)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.X509Authorities()) == 2 {
			break
		}
	}
	set.Remove(peerTD)
	for {
		if err := src.WaitUntilUpdated(ctx); err != nil {
			t.Fatalf("removed federated bundle still served: %v", err)
		}
		if _, err := src.GetX509BundleForTrustDomain(peerTD); err != nil {
			break
		}
	}
}

func TestJWTSVIDRoundTrip(t *testing.T) {
	t.Parallel()
	c := identitytest.NewCA(t, td, nil)
	peerTD := spiffeid.RequireTrustDomainFromString("peer.test")
	peer := identitytest.NewCA(t, peerTD, nil)
	addr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{
		Entries: identitytest.Self(t, "shop/web", ""), Federated: bundle.NewSet(peer.Bundle())})
	ctx := ctxT(t)
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	svid, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "orders", ExtraAudiences: []string{"billing"}})
	if err != nil {
		t.Fatal(err)
	}
	web := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	if svid.ID != web {
		t.Fatalf("JWT-SVID subject = %s, want %s", svid.ID, web)
	}
	peerTok, err := peer.IssueJWTSVID(spiffeid.RequireFromPath(peerTD, "/ns/x/sa/y"), []string{"orders"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	foreign := identitytest.NewCA(t, spiffeid.RequireTrustDomainFromString("stranger.test"), nil)
	strangerTok, err := foreign.IssueJWTSVID(spiffeid.RequireFromPath(foreign.TrustDomain(), "/a"), []string{"orders"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		token    string
		audience string
		want     string // empty: rejected
	}{
		{"own token, first audience", svid.Marshal(), "orders", web.String()},
		{"own token, extra audience", svid.Marshal(), "billing", web.String()},
		{"own token, wrong audience", svid.Marshal(), "payments", ""},
		{"federated peer token", peerTok, "orders", "spiffe://peer.test/ns/x/sa/y"},
		{"token from an unfederated trust domain", strangerTok, "orders", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := client.ValidateJWTSVID(ctx, tt.token, tt.audience)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ValidateJWTSVID accepted it: %s", got.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID.String() != tt.want {
				t.Errorf("subject = %s, want %s", got.ID, tt.want)
			}
			if _, ok := got.Claims["exp"]; !ok {
				t.Errorf("claims lack exp: %v", got.Claims)
			}
		})
	}
	t.Run("JWT bundles", func(t *testing.T) {
		set, err := client.FetchJWTBundles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jwtsvid.ParseAndValidate(svid.Marshal(), set, []string{"orders"}); err != nil {
			t.Errorf("token does not validate locally against fetched JWT bundles: %v", err)
		}
		if !set.Has(peerTD) {
			t.Errorf("fetched JWT bundles lack federated %s", peerTD)
		}
	})
}

// TestStreamsShareSVID: two streams of one identity get the same certificate
// and key (one cache entry per SPIFFE ID), and closing a client ends its
// stream on the server (checked by goleak in TestMain).
func TestStreamsShareSVID(t *testing.T) {
	t.Parallel()
	c := identitytest.NewCA(t, td, nil)
	addr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/web", "")})
	ctx := ctxT(t)
	var got []*x509svid.SVID
	for range 2 {
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
		if err != nil {
			t.Fatal(err)
		}
		s, err := src.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if !got[0].Certificates[0].Equal(got[1].Certificates[0]) {
		t.Errorf("two streams of one identity got different certificates")
	}
}
