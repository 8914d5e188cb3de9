package identity_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/identitytest"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("cluster.local")
	serverID = spiffeid.RequireFromPath(td, "/ns/shop/sa/orders")
	clientID = spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
)

// echoServer accepts mTLS connections and echoes lines back until the test ends.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// roundTrip sends one line on an established connection and checks the echo.
func roundTrip(c *tls.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo = %q, want %q", got, msg)
	}
	return nil
}

func source(t *testing.T, ctx context.Context, addr string) *workloadapi.X509Source {
	t.Helper()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// TestMTLSAcrossRenewal: two peers get SVIDs from Causeway's Workload API
// (the same uid, served by two sockets with different tables, stands in for
// two workloads). A connection made before renewal keeps working after it,
// and a new handshake presents the renewed certificate.
func TestMTLSAcrossRenewal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := identitytest.NewCA(t, td, nil)
	const ttl = 4 * time.Second
	serverSrc := source(t, ctx, identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/orders", ""), SVIDTTL: ttl}))
	clientSrc := source(t, ctx, identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/web", ""), SVIDTTL: ttl}))

	addr := echoServer(t, tlsconfig.MTLSServerConfig(serverSrc, serverSrc, tlsconfig.AuthorizeID(clientID)))
	dial := func() (*tls.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", addr, tlsconfig.MTLSClientConfig(clientSrc, clientSrc, tlsconfig.AuthorizeID(serverID)))
	}
	old, err := dial()
	if err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	defer old.Close()
	if err := roundTrip(old, "before renewal"); err != nil {
		t.Fatal(err)
	}
	oldServerCert := old.ConnectionState().PeerCertificates[0]

	// Wait until the server's source has a renewed SVID pushed.
	for {
		s, err := serverSrc.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		if !s.Certificates[0].Equal(oldServerCert) {
			break
		}
		if err := serverSrc.WaitUntilUpdated(ctx); err != nil {
			t.Fatalf("server SVID never renewed: %v", err)
		}
	}
	fresh, err := dial()
	if err != nil {
		t.Fatalf("handshake after renewal: %v", err)
	}
	defer fresh.Close()
	if fresh.ConnectionState().PeerCertificates[0].Equal(oldServerCert) {
		t.Errorf("new handshake still got the pre-renewal server certificate")
	}
	if err := roundTrip(fresh, "new connection"); err != nil {
		t.Error(err)
	}
	if err := roundTrip(old, "established connection after renewal"); err != nil {
		t.Errorf("established connection broke across renewal: %v", err)
	}
}

// TestMTLSRefusals: the server (SVID from the Workload API) refuses clients
// whose certificates it must not trust; a client with a good certificate is
// the control.
func TestMTLSRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var skew atomic.Int64 // lets the CA issue certificates "in the past"
	c := identitytest.NewCA(t, td, func(o *ca.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	serverSrc := source(t, ctx, identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "shop/orders", "")}))
	addr := echoServer(t, tlsconfig.MTLSServerConfig(serverSrc, serverSrc, tlsconfig.AuthorizeMemberOf(td)))

	issue := func(t *testing.T, from *ca.CA, id spiffeid.ID, ttl time.Duration) *x509svid.SVID {
		t.Helper()
		s, err := from.IssueX509SVID(id, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherCA := identitytest.NewCA(t, td, nil) // same trust domain name, other keys
	otherTD := spiffeid.RequireTrustDomainFromString("other.test")
	otherTDCA := identitytest.NewCA(t, otherTD, nil)
	skew.Store(int64(-2 * time.Hour))
	expired := issue(t, c, clientID, time.Minute)
	skew.Store(0)

	tests := []struct {
		name   string
		svid   *x509svid.SVID
		wantOK bool
	}{
		{"good client (control)", issue(t, c, clientID, time.Hour), true},
		{"certificate from another CA", issue(t, otherCA, clientID, time.Hour), false},
		{"certificate for another trust domain", issue(t, otherTDCA, spiffeid.RequireFromPath(otherTD, "/ns/shop/sa/web"), time.Hour), false},
		{"expired certificate", expired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The client trusts the server properly, so any failure is the
			// server refusing the client.
			cfg := tlsconfig.MTLSClientConfig(tt.svid, serverSrc, tlsconfig.AuthorizeID(serverID))
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
			if err == nil {
				// TLS 1.3: the server's verdict on the client certificate
				// arrives after the client's handshake returns.
				err = roundTrip(conn, "hello")
				conn.Close()
			}
			if (err == nil) != tt.wantOK {
				t.Errorf("err = %v, want ok=%v", err, tt.wantOK)
			}
			// The refusal must be the server's alert, not a local or network failure.
			if !tt.wantOK && err != nil && !strings.Contains(err.Error(), "remote error: tls: bad certificate") {
				t.Errorf("refused with %v, want the server's bad certificate alert", err)
			}
		})
	}
	t.Run("client refuses server from another CA", func(t *testing.T) {
		cfg := tlsconfig.MTLSClientConfig(issue(t, c, clientID, time.Hour), x509bundle.FromX509Authorities(td, []*x509.Certificate{otherCA.Bundle().X509Authorities()[0]}), tlsconfig.AuthorizeID(serverID))
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
		if err == nil {
			conn.Close()
			t.Errorf("client accepted a server it has no root for")
		}
	})
}
