package spiretest_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/federation"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/identity/spiretest"
)

// TestInteropFederation federates a Causeway trust domain with a SPIRE trust
// domain through each side's https_spiffe bundle endpoint, then connects a
// SPIRE-identified client to a Causeway-identified server over mTLS.
//
//	Causeway                          SPIRE
//	CA ── bundle endpoint ──────────▶ spire-server (federation create)
//	bundle.Set ◀── FetchBundle ────── bundle endpoint
//	Workload API ─▶ server  ◀─mTLS─  client ◀─ agent Workload API
func TestInteropFederation(t *testing.T) {
	s := spiretest.Start(t, spiretest.Options{BundleEndpoint: true})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	// Causeway's trust domain and its bundle endpoint.
	c := identitytest.NewCA(t, spiffeid.RequireTrustDomainFromString("cluster.local"), nil)
	endpointSVID, err := c.NewSVIDSource(bundle.ServerID(c.TrustDomain()), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := bundle.NewEndpoint(c.TrustDomain(), c, endpointSVID, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ep.Serve(bl)
	defer ep.Shutdown(context.Background())

	// SPIRE starts from Causeway's bundle. Causeway then rotates the way
	// Maintain does (prepare, let peers fetch, activate) and SPIRE is made to
	// refresh from the endpoint after each step: the bundle it then holds
	// (both roots and both JWT keys) can only have come from there,
	// and the second refresh authenticates an endpoint certificate signed by
	// the new root, which SPIRE knows only from the first.
	s.Federate(t, c.Bundle(), "https://"+bl.Addr().String(), bundle.ServerID(c.TrustDomain()))
	refresh := func(t *testing.T) {
		t.Helper()
		s.ServerCLI(t, "federation", "refresh", "-id", c.TrustDomain().IDString())
		listed := s.ServerCLI(t, "bundle", "list", "-id", c.TrustDomain().IDString(), "-format", "spiffe")
		got, err := spiffebundle.Parse(c.TrustDomain(), []byte(listed[max(strings.Index(listed, "{"), 0):]))
		if err != nil {
			t.Fatalf("parse SPIRE's copy of %s's bundle: %v\n%s", c.TrustDomain(), err, listed)
		}
		// SPIRE's listing omits the sequence number, so compare the keys.
		want := c.Bundle()
		if !got.X509Bundle().Equal(want.X509Bundle()) || !got.JWTBundle().Equal(want.JWTBundle()) {
			t.Fatalf("SPIRE holds %d roots and %d JWT keys for %s; want Causeway's current %d and %d",
				len(got.X509Authorities()), len(got.JWTAuthorities()), c.TrustDomain(), len(want.X509Authorities()), len(want.JWTAuthorities()))
		}
	}
	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	refresh(t)
	if err := c.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if sv, _ := endpointSVID.GetX509SVID(); sv.Certificates[1].CheckSignatureFrom(c.Bundle().X509Authorities()[0]) != nil {
		t.Fatalf("endpoint SVID not reissued from the activated root")
	}
	refresh(t)
	client := spiffeid.RequireFromPath(s.TrustDomain, "/ns/shop/sa/web")
	s.RegisterUID(t, client, os.Getuid(), 10*time.Minute, c.TrustDomain())

	// Causeway learns SPIRE's bundle from SPIRE's endpoint, bootstrapped with
	// the bundle read from the server once (as an operator would).
	spireBundle, err := federation.FetchBundle(ctx, s.TrustDomain, s.BundleEndpointURL,
		federation.WithSPIFFEAuth(s.Bundle(t), s.ServerID))
	if err != nil {
		t.Fatalf("FetchBundle from SPIRE: %v", err)
	}
	federated := bundle.NewSet(spireBundle)
	serverID := spiffeid.RequireFromPath(c.TrustDomain(), "/ns/shop/sa/orders")
	causewayAddr := identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{
		Entries: identitytest.Self(t, "shop/orders", ""), Federated: federated})

	serverSrc, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(causewayAddr)))
	if err != nil {
		t.Fatal(err)
	}
	defer serverSrc.Close()
	clientSrc, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(s.AgentAddr)))
	if err != nil {
		t.Fatal(err)
	}
	defer clientSrc.Close()
	// The agent delivers Causeway's (rotated) bundle once it has synced;
	// until then the client cannot verify the server's new SVID.
	for {
		if b, err := clientSrc.GetX509BundleForTrustDomain(c.TrustDomain()); err == nil && len(b.X509Authorities()) == 2 {
			break
		}
		if err := clientSrc.WaitUntilUpdated(ctx); err != nil {
			t.Fatalf("SPIRE agent never delivered %s's bundle: %v", c.TrustDomain(), err)
		}
	}

	l, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(serverSrc, serverSrc, tlsconfig.AuthorizeID(client)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		io.Copy(conn, conn)
	}()
	conn, err := tls.Dial("tcp", l.Addr().String(), tlsconfig.MTLSClientConfig(clientSrc, clientSrc, tlsconfig.AuthorizeID(serverID)))
	if err != nil {
		t.Fatalf("SPIRE client to Causeway server handshake: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
	if got := conn.ConnectionState().PeerCertificates[0].URIs[0].String(); got != serverID.String() {
		t.Errorf("server presented %s, want %s", got, serverID)
	}
}
