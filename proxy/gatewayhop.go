package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/causeway-mesh/causeway/spec"
)

// gatewayHop is how one endpoint behind another cluster's east-west gateway
// is reached (DESIGN.md §7, multi-cluster contract "Data path" 1): mTLS to
// the gateway, which must prove exactly Gateway, with an SNI naming the
// remote service port; then, inside that connection, mTLS end to end with
// the destination sidecar, which must prove one of the imported service's
// identities (any member of the gateway's trust domain when the import
// names none). The gateway relays the inner TLS records and never sees the
// plaintext; the destination sees this proxy's SVID as the caller.
//
// It is built by clusterPort.update on the Apply goroutine and immutable
// afterwards; the two tls.Configs ask the SVID and bundle sources afresh on
// every handshake, so they may be kept and shared.
type gatewayHop struct {
	gateway spiffeid.ID
	remote  string // "ns/name:port" behind the gateway, for errors
	outer   *tls.Config
	inner   *tls.Config
}

// errNoMeshTLS: a gateway hop is mTLS or nothing (the gateway refuses
// plaintext), so a proxy without SVIDs cannot use one.
var errNoMeshTLS = errors.New("mTLS is off (no SVID source): a gateway hop needs an SVID")

func newGatewayHop(m *meshTLS, c *spec.Cluster, e spec.Endpoint, port int32) *gatewayHop {
	h := &gatewayHop{gateway: e.Gateway, remote: fmt.Sprintf("%s:%d", e.Remote, port)}
	if m == nil {
		return h
	}
	sni := meshSNI(e.Remote, port, e.Gateway.TrustDomain())
	h.outer = m.client(e.Gateway, sni)
	auth := tlsconfig.AuthorizeMemberOf(e.Gateway.TrustDomain())
	if len(c.Identities) > 0 {
		auth = tlsconfig.AuthorizeOneOf(c.Identities...)
	}
	h.inner = tlsconfig.MTLSClientConfig(m.svids, m.bundles, auth)
	h.inner.ServerName = sni
	return h
}

// dial runs both handshakes over c, an established TCP connection to the
// gateway, and returns the inner TLS connection (the preamble is the
// caller's to write). It owns c: on error c is closed.
func (h *gatewayHop) dial(ctx context.Context, c net.Conn) (net.Conn, error) {
	if h.outer == nil {
		c.Close()
		return nil, fmt.Errorf("%s through gateway %s: %w", h.remote, h.gateway, errNoMeshTLS)
	}
	outer := tls.Client(c, h.outer)
	if err := outer.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("gateway mTLS to %s (%s) for %s: %w", c.RemoteAddr(), h.gateway, h.remote, err)
	}
	inner := tls.Client(outer, h.inner)
	if err := inner.HandshakeContext(ctx); err != nil {
		outer.Close()
		return nil, fmt.Errorf("mTLS to %s through gateway %s (%s): %w", h.remote, c.RemoteAddr(), h.gateway, err)
	}
	return meshConn{inner}, nil
}
