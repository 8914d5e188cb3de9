package attest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	workloadserver "github.com/causeway-mesh/causeway/identity/workloadapi"
)

// TestWorkloadAPIWithTokenReview runs the cluster-mode chain end to end on
// real sockets: go-spiffe's workloadapi client sends the projected token
// (attest.TokenFile as a gRPC dial option) to Causeway's Workload API server,
// whose TokenReview attestor asks the real apiserver; the caller gets the
// SVID of the token's ServiceAccount, and PermissionDenied without a good token.
func TestWorkloadAPIWithTokenReview(t *testing.T) {
	c := newCluster(t)
	c.serviceAccount("web")
	c.serviceAccount("orders")
	web, orders := c.pod("web-0", "web"), c.pod("orders-0", "orders")

	authority := identitytest.NewCA(t, td, nil)
	srv, err := workloadserver.New(workloadserver.Config{CA: authority, Attestor: c.attestor(nil), Logger: identitytest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := workloadserver.Listen(filepath.Join(identitytest.SocketDir(t), "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	addr := workloadapi.WithAddr("unix://" + l.Addr().String())

	// One token file, rewritten between cases as the kubelet rotates it:
	// TokenFile reads it on every call.
	tokenPath := filepath.Join(t.TempDir(), "token")
	withTokenFile := workloadapi.WithDialOptions(grpc.WithPerRPCCredentials(attest.TokenFile{Path: tokenPath}))

	fetchX509 := func(ctx context.Context, opts ...workloadapi.ClientOption) (spiffeid.ID, error) {
		svid, err := workloadapi.FetchX509SVID(ctx, opts...)
		if err != nil {
			return spiffeid.ID{}, err
		}
		if _, _, err := x509svid.Verify(svid.Certificates, authority); err != nil {
			t.Errorf("SVID for %s does not verify against the CA: %v", svid.ID, err)
		}
		return svid.ID, nil
	}
	// X509Source is how proxies consume the Workload API.
	source := func(ctx context.Context, opts ...workloadapi.ClientOption) (spiffeid.ID, error) {
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(opts...))
		if err != nil {
			return spiffeid.ID{}, err
		}
		defer src.Close()
		svid, err := src.GetX509SVID()
		if err != nil {
			return spiffeid.ID{}, err
		}
		return svid.ID, nil
	}
	fetchJWT := func(ctx context.Context, opts ...workloadapi.ClientOption) (spiffeid.ID, error) {
		svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "orders"}, opts...)
		if err != nil {
			return spiffeid.ID{}, err
		}
		return svid.ID, nil
	}

	tests := []struct {
		name  string
		token string // written to the token file; empty: no file option at all
		fetch func(context.Context, ...workloadapi.ClientOption) (spiffeid.ID, error)
		want  spiffeid.ID // zero: PermissionDenied
	}{
		{"web's token gets web's X.509-SVID", c.token("web", "causeway", web), fetchX509, c.id("web")},
		{"rotated file with orders' token gets orders'", c.token("orders", "causeway", orders), fetchX509, c.id("orders")},
		{"X509Source with web's token", c.token("web", "causeway", web), source, c.id("web")},
		{"JWT-SVID with orders' token", c.token("orders", "causeway", orders), fetchJWT, c.id("orders")},
		{"no token", "", fetchX509, spiffeid.ID{}},
		{"no token, JWT-SVID", "", fetchJWT, spiffeid.ID{}},
		{"token for another audience", c.token("web", "vault", web), fetchX509, spiffeid.ID{}},
		{"garbage in the token file", "garbage", fetchX509, spiffeid.ID{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
			defer cancel()
			opts := []workloadapi.ClientOption{addr}
			if tt.token != "" {
				if err := os.WriteFile(tokenPath, []byte(tt.token), 0o600); err != nil {
					t.Fatal(err)
				}
				opts = append(opts, withTokenFile)
			}
			if tt.want.IsZero() {
				// The one-shot fetch reports the status; X509Source would retry.
				_, err := tt.fetch(ctx, opts...)
				if status.Code(err) != codes.PermissionDenied {
					t.Fatalf("err = %v, want PermissionDenied", err)
				}
				return
			}
			got, err := tt.fetch(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("SVID %s, want %s", got, tt.want)
			}
		})
	}
}

// TestTokenFile: the per-RPC credentials read the file on every call, trim
// the kubelet's formatting, and fail (rather than send nothing) when the
// file is missing or empty.
func TestTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string  // empty: error
	}{
		{"token", new("abc.def.ghi"), "abc.def.ghi"},
		{"trailing newline", new("abc.def.ghi\n"), "abc.def.ghi"},
		{"empty file", new(""), ""},
		{"missing file", nil, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(dir, string(rune('a'+i)))
			if tt.content != nil {
				if err := os.WriteFile(p, []byte(*tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			md, err := attest.TokenFile{Path: p}.GetRequestMetadata(context.Background())
			if tt.want == "" {
				if err == nil {
					t.Fatalf("metadata %v, want an error", md)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := md[attest.TokenMetadataKey]; got != tt.want {
				t.Errorf("%s = %q, want %q", attest.TokenMetadataKey, got, tt.want)
			}
		})
	}
	if (attest.TokenFile{}).RequireTransportSecurity() {
		t.Error("TokenFile requires transport security; the Workload API socket has none")
	}
}
