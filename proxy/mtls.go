package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/spec"
)

// meshTLS is mTLS between proxies (issue 4). The SVID and bundles come only
// through go-spiffe's source interfaces, so the same proxy runs against
// Causeway's Workload API, a real SPIRE agent, or test sources. Every
// handshake asks the sources afresh: a renewed SVID is used for the next
// connection while established ones keep theirs.
type meshTLS struct {
	svids   x509svid.Source
	bundles x509bundle.Source
	server  *tls.Config
}

func newMeshTLS(svids x509svid.Source, bundles x509bundle.Source) *meshTLS {
	// The handshake only proves the caller holds an SVID our bundles
	// vouch for; what it may do is Table.Authorize's decision, per request.
	return &meshTLS{svids: svids, bundles: bundles,
		server: tlsconfig.MTLSServerConfig(svids, bundles, tlsconfig.AuthorizeAny())}
}

// client is the TLS config for dialling an endpoint that must prove id.
func (m *meshTLS) client(id spiffeid.ID, sni string) *tls.Config {
	c := tlsconfig.MTLSClientConfig(m.svids, m.bundles, tlsconfig.AuthorizeID(id))
	c.ServerName = sni
	return c
}

// meshSNI names the service port a connection is for:
// <port>.<name>.<ns>.svc.<trust-domain>. The preamble inside TLS is what the
// inbound side acts on; SNI makes the same visible to anything in between.
func meshSNI(svc spec.Key, port int32, td spiffeid.TrustDomain) string {
	return strconv.Itoa(int(port)) + "." + svc.Name + "." + svc.Namespace + ".svc." + td.Name()
}

// meshConn hides a *tls.Conn from net/http, which treats a *tls.Conn it did
// not dial itself as HTTPS; between proxies the protocol is fixed by the
// service port (h2c or HTTP/1.1 inside TLS), not by ALPN.
type meshConn struct{ *tls.Conn }

// peerIdentity returns the verified SPIFFE ID of a TLS peer.
func peerIdentity(cs tls.ConnectionState) (spiffeid.ID, []byte, error) {
	if len(cs.PeerCertificates) == 0 {
		return spiffeid.ID{}, nil, errors.New("peer sent no certificate")
	}
	id, err := x509svid.IDFromCert(cs.PeerCertificates[0])
	return id, cs.PeerCertificates[0].Raw, err
}

// xfccValue renders Envoy's X-Forwarded-Client-Cert for a verified caller:
// By=<our SPIFFE ID>;Hash=<hex SHA-256 of the caller's DER leaf>;URI=<caller>.
func xfccValue(by, caller spiffeid.ID, leafDER []byte) string {
	sum := sha256.Sum256(leafDER)
	return "By=" + by.String() + ";Hash=" + hex.EncodeToString(sum[:]) + ";URI=" + caller.String()
}

// dialTLS wraps an established connection to a meshed endpoint in mTLS,
// requiring the endpoint to prove id.
func (m *meshTLS) dialTLS(ctx context.Context, c net.Conn, id spiffeid.ID, sni string) (net.Conn, error) {
	tc := tls.Client(c, m.client(id, sni))
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("mTLS to %s (%s): %w", c.RemoteAddr(), id, err)
	}
	return meshConn{tc}, nil
}
