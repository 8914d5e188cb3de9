package spiretest_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/identity/spiretest"
)

// pick returns an X509Source option choosing id among the SVIDs the agent
// serves: both test workloads share the test's uid, so the agent hands this
// process both SVIDs.
func pick(id spiffeid.ID) workloadapi.X509SourceOption {
	return workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
		for _, s := range svids {
			if s.ID == id {
				return s
			}
		}
		return svids[0]
	})
}

// TestInteropSPIREAgent: go-spiffe X509Sources fed by a real SPIRE agent
// drive an mTLS connection between two SPIRE-issued identities, and the
// SPIRE-SVID server refuses certificates from Causeway's CA.
func TestInteropSPIREAgent(t *testing.T) {
	s := spiretest.Start(t, spiretest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	web := spiffeid.RequireFromPath(s.TrustDomain, "/ns/shop/sa/web")
	orders := spiffeid.RequireFromPath(s.TrustDomain, "/ns/shop/sa/orders")
	registered := time.Now()
	for _, id := range []spiffeid.ID{web, orders} {
		s.RegisterUID(t, id, os.Getuid(), 10*time.Minute)
	}
	s.WaitForSVIDs(t, ctx, web, orders)
	t.Logf("SPIRE: agent healthy %s after server start; both SVIDs served %s after registration (%s after server start)",
		s.AgentReady.Sub(s.Started).Round(time.Millisecond), time.Since(registered).Round(time.Millisecond), time.Since(s.Started).Round(time.Millisecond))

	src := func(id spiffeid.ID) *workloadapi.X509Source {
		x, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(s.AgentAddr)), pick(id))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { x.Close() })
		got, err := x.GetX509SVID()
		if err != nil || got.ID != id {
			t.Fatalf("X509Source picked %v, %v; want %s", got, err, id)
		}
		return x
	}
	serverSrc, clientSrc := src(orders), src(web)

	l, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(serverSrc, serverSrc, tlsconfig.AuthorizeID(web)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					io.WriteString(c, line)
				}
			}()
		}
	}()
	causeway := identitytest.NewCA(t, spiffeid.RequireTrustDomainFromString("cluster.local"), nil)
	impostor := identitytest.NewCA(t, s.TrustDomain, nil) // SPIRE's trust domain name, Causeway's keys
	issue := func(c interface {
		IssueX509SVID(spiffeid.ID, time.Duration) (*x509svid.SVID, error)
	}, id spiffeid.ID) x509svid.Source {
		sv, err := c.IssueX509SVID(id, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return sv
	}
	tests := []struct {
		name   string
		client x509svid.Source
		wantOK bool
	}{
		{"SPIRE-SVID client to SPIRE-SVID server", clientSrc, true},
		{"Causeway SVID from another trust domain", issue(causeway, spiffeid.RequireFromPath(causeway.TrustDomain(), "/ns/shop/sa/web")), false},
		{"SVID for SPIRE's trust domain from another CA", issue(impostor, web), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tlsconfig.MTLSClientConfig(tt.client, serverSrc, tlsconfig.AuthorizeID(orders))
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.Addr().String(), cfg)
			if err == nil {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err = io.WriteString(conn, "ping\n"); err == nil {
					var got string
					got, err = bufio.NewReader(conn).ReadString('\n')
					if err == nil && got != "ping\n" {
						t.Fatalf("echo = %q", got)
					}
				}
			}
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tt.wantOK)
			}
			if !tt.wantOK && !strings.Contains(err.Error(), "bad certificate") {
				t.Errorf("refused with %v, want the server's bad certificate alert", err)
			}
		})
	}
}
