package control_test

import (
	"context"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
	"github.com/causeway-mesh/causeway/spec/spectest"
)

// TestMTLSBindsNodeToSVID runs the stream over SPIFFE mTLS with SVIDs from
// Causeway's own CA: the node's identity is its certificate's, whatever it
// claims.
func TestMTLSBindsNodeToSVID(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString(spectest.TrustDomain)
	ca := identitytest.NewCA(t, td, nil)
	other := identitytest.NewCA(t, spiffeid.RequireTrustDomainFromString("elsewhere.example"), nil)
	controlID := spiffeid.RequireFromPath(td, "/ns/causeway/sa/control")
	controlSVID, err := ca.NewSVIDSource(controlID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := Start(t, "", control.Options{Creds: control.MTLS(controlSVID, ca, td)})
	snap := Snapshot(t, Mesh(Web))
	srv.Publish(snap, nil)

	cases := []struct {
		name     string
		issuer   string // "ca" or "other"
		svid     spiffeid.ID
		claim    spiffeid.ID
		wantCode codes.Code
		wantID   spiffeid.ID
	}{
		{name: "claim matches SVID", issuer: "ca", svid: API, claim: API, wantCode: codes.OK, wantID: API},
		{name: "no claim takes SVID", issuer: "ca", svid: API, wantCode: codes.OK, wantID: API},
		{name: "claim of another workload refused", issuer: "ca", svid: Web, claim: API, wantCode: codes.PermissionDenied},
		{name: "foreign trust domain fails the handshake", issuer: "other", svid: spiffeid.RequireFromPath(other.TrustDomain(), "/ns/shop/sa/api"), claim: API, wantCode: codes.Unavailable},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issuer := ca
			if tc.issuer == "other" {
				issuer = other
			}
			svid, err := issuer.NewSVIDSource(tc.svid, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			// The client trusts our CA for the control plane either way.
			creds := configsource.MTLS(svid, ca, tlsconfig.AuthorizeID(controlID))
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			node := spec.Node{ID: "n" + string(rune('0'+i)), Identity: tc.claim, Services: APINode.Services}
			resp, err := hello(ctx, conn, node)
			if got := status.Code(err); got != tc.wantCode {
				t.Fatalf("stream ended with %v (%v), want %v", got, err, tc.wantCode)
			}
			if tc.wantCode != codes.OK {
				if _, ok := srv.Proxy(node.ID); ok {
					t.Error("a refused node has sync state")
				}
				return
			}
			want := spec.Compile(snap, spec.Node{ID: node.ID, Identity: tc.wantID, Services: node.Services})
			if resp.GetVersionInfo() != want.Version {
				t.Errorf("got version %s, want the config compiled for %s (%s)", resp.GetVersionInfo(), tc.wantID, want.Version)
			}
			if p, _ := srv.Proxy(node.ID); p.Node.Identity != tc.wantID {
				t.Errorf("sync state identity %s, want %s", p.Node.Identity, tc.wantID)
			}
		})
	}
}

// hello opens a stream, sends node and returns the first response; an error
// from any step is the one the caller checks (a failed TLS handshake shows
// at the open, a refused identity at the first receive).
func hello(ctx context.Context, conn *grpc.ClientConn, node spec.Node) (*configv1.StreamConfigResponse, error) {
	st, err := configv1.NewConfigServiceClient(conn).StreamConfig(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&configv1.StreamConfigRequest{Node: configv1.NodeFromSpec(node, "")}); err != nil {
		// The server may already have closed the stream; Recv has its status.
		_, rerr := st.Recv()
		return nil, rerr
	}
	return st.Recv()
}
