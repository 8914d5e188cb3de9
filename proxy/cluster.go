package proxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/proxy/balance"
	"github.com/causeway-mesh/causeway/spec"
)

// preambleLen is the size of the port preamble a meshed hop starts with (see
// doc.go): "CWY", version 1, port (uint16 BE), 2 reserved bytes.
const preambleLen = 8

var preambleMagic = [4]byte{'C', 'W', 'Y', 1}

func putPreamble(b []byte, port int32) {
	copy(b, preambleMagic[:])
	binary.BigEndian.PutUint16(b[4:], uint16(port))
	b[6], b[7] = 0, 0
}

// parsePreamble returns the service port a preamble names.
func parsePreamble(b []byte) (int32, error) {
	if len(b) < preambleLen || [4]byte(b[:4]) != preambleMagic {
		return 0, errors.New("not a Causeway preamble")
	}
	port := int32(binary.BigEndian.Uint16(b[4:]))
	if port == 0 {
		return 0, errors.New("preamble names port 0")
	}
	return port, nil
}

// readPreamble reads exactly preambleLen bytes, so the connection is not
// wrapped in a buffer and stays spliceable.
func readPreamble(c net.Conn, timeout time.Duration) (int32, error) {
	var b [preambleLen]byte
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, fmt.Errorf("read preamble: %w", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return parsePreamble(b[:])
}

// clusterKey names one port of one upstream cluster (a service the node may
// send to). Protocol is part of the key: a port whose protocol changes gets a
// fresh transport rather than pooled connections speaking the old one.
type clusterKey struct {
	Service spec.Key
	Port    int32
	Proto   spec.Protocol
}

func (k clusterKey) String() string {
	return k.Service.String() + ":" + strconv.Itoa(int(k.Port))
}

// clusterPort is the long-lived state of sending to one cluster port:
// pooled connections, the endpoint balancer and the circuit breaker. It
// outlives configs (a config swap every 100 ms must not reset EWMA latencies,
// open circuits or idle connections); Apply updates its endpoints in place.
type clusterPort struct {
	key       clusterKey
	name      string // "ns/name:port", the circuit metric label
	svcName   string // "ns/name", the backend metric label
	transport *http.Transport
	// rt is what requests go through: h1 for plain HTTP/1.1 ports with no
	// connection cap, else transport (Upgrade requests always use it).
	rt      http.RoundTripper
	h1      *h1Client
	lb      *balance.Balancer
	breaker circuitBreaker
	// meshed holds the endpoint addresses that are Causeway sidecars (or
	// east-west gateways in front of them) and so get the preamble, with how
	// each is reached. Immutable map behind an atomic pointer.
	meshed atomic.Pointer[map[string]meshPeer]
	mtls   *meshTLS         // nil: the mesh is plaintext
	addrs  []balance.Member // last Update, guarded by Proxy.mu
	dialer *net.Dialer
}

func newClusterPort(k clusterKey, pol Policy, lb *balance.Balancer, br circuitBreaker, mtls *meshTLS) *clusterPort {
	cp := &clusterPort{
		key:     k,
		name:    k.String(),
		svcName: k.Service.String(),
		lb:      lb,
		breaker: failoverBreaker(br, lb),
		mtls:    mtls,
		dialer:  &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second},
	}
	empty := map[string]meshPeer{}
	cp.meshed.Store(&empty)
	if k.Proto.IsHTTP() {
		cp.transport = newTransport(k.Proto, pol, cp.dial)
		cp.rt = cp.transport
		if k.Proto == spec.ProtocolHTTP && pol.MaxConnsPerHost <= 0 {
			cp.h1 = newH1Client(cp.dial, pol.MaxIdleConnsPerHost)
			cp.rt = cp.h1
		}
	}
	return cp
}

// newTransport makes the connection pool for one cluster port. Idle
// connections per host are raised far above Go's default of 2, which
// otherwise makes a busy proxy open and close a connection per request.
func newTransport(proto spec.Protocol, pol Policy, dial func(context.Context, string, string) (net.Conn, error)) *http.Transport {
	t := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        0, // no global cap; the per-host cap bounds it
		MaxIdleConnsPerHost: pol.MaxIdleConnsPerHost,
		MaxConnsPerHost:     pol.MaxConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
		// A proxy must pass Accept-Encoding through, never add its own.
		DisableCompression: true,
		// Read/write buffers stay at net/http's 4 KiB per connection: a
		// large body bypasses bufio and is copied in the forwarder's 32 KiB
		// pooled buffers, so bigger ones would only cost RSS per idle
		// connection.
	}
	var p http.Protocols
	if proto == spec.ProtocolHTTP {
		p.SetHTTP1(true)
	} else {
		// http2 and grpc ports speak h2c with prior knowledge to the endpoint.
		p.SetUnencryptedHTTP2(true)
	}
	t.Protocols = &p
	return t
}

// dial connects to an endpoint and, when it is a sidecar, names the service
// port in the preamble before any protocol byte.
func (cp *clusterPort) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := cp.dialer.DialContext(ctx, network, addr)
	if err != nil {
		if ctx.Err() == nil {
			// Gone rather than slow: where a lower priority can take the
			// traffic the balancer ejects it now, so the retry of this very
			// request fails over (balance.Unreachable).
			cp.lb.Unreachable(addr)
		}
		return nil, err
	}
	peer, meshed := (*cp.meshed.Load())[addr]
	if meshed {
		switch {
		case peer.hop != nil:
			if c, err = peer.hop.dial(ctx, c); err != nil {
				return nil, fmt.Errorf("cluster %s: %w", cp.name, err)
			}
		case cp.mtls != nil && !peer.id.IsZero():
			sni := meshSNI(cp.key.Service, cp.key.Port, peer.id.TrustDomain())
			if c, err = cp.mtls.dialTLS(ctx, c, peer.id, sni); err != nil {
				return nil, fmt.Errorf("cluster %s: %w", cp.name, err)
			}
		}
		var b [preambleLen]byte
		putPreamble(b[:], cp.key.Port)
		if _, err := c.Write(b[:]); err != nil {
			c.Close()
			return nil, fmt.Errorf("cluster %s: write preamble to %s: %w", cp.name, addr, err)
		}
	}
	return c, nil
}

// meshPeer is how a meshed endpoint is reached: directly, over mTLS when id
// is set (plaintext when zero), or through another cluster's east-west
// gateway when hop is set (gatewayhop.go).
type meshPeer struct {
	id  spiffeid.ID
	hop *gatewayHop
}

// update gives the cluster port the endpoints of a new config: the ready
// endpoints that serve this port (ServicePort 0 serves every port), each at
// its priority, so the balancer fails over from one level to the next (an
// endpoint that is not ready is simply not a member). It returns how many
// ready endpoints it left out because UDP cannot cross a gateway, for Apply
// to say so.
func (cp *clusterPort) update(c *spec.Cluster) (udpViaGateway int) {
	var addrs []balance.Member
	meshed := map[string]meshPeer{}
	if c != nil {
		for _, e := range c.Endpoints {
			if !e.Ready || (e.ServicePort != 0 && e.ServicePort != cp.key.Port) {
				continue
			}
			// UDP does not cross clusters: the gateway hop is mTLS over TCP
			// and there is no DTLS here, so such an endpoint is left out and
			// a UDP port served only through gateways has no endpoint.
			if !e.Gateway.IsZero() && cp.key.Proto == spec.ProtocolUDP {
				udpViaGateway++
				continue
			}
			a := net.JoinHostPort(e.Addr, strconv.Itoa(int(e.Port)))
			addrs = append(addrs, balance.Member{Addr: a, Priority: e.Priority})
			switch {
			case !e.Gateway.IsZero():
				meshed[a] = meshPeer{hop: newGatewayHop(cp.mtls, c, e, cp.key.Port)}
			case !e.Identity.IsZero() || e.ServicePort == 0:
				meshed[a] = meshPeer{id: e.Identity}
			}
		}
	}
	cp.meshed.Store(&meshed)
	if !slices.Equal(addrs, cp.addrs) || cp.addrs == nil {
		cp.addrs = addrs
		if cp.addrs == nil {
			cp.addrs = []balance.Member{}
		}
		cp.lb.UpdateMembers(addrs)
	}
	return udpViaGateway
}

func (cp *clusterPort) close() {
	if cp.transport != nil {
		cp.transport.CloseIdleConnections()
	}
	if cp.h1 != nil {
		cp.h1.close()
	}
}
