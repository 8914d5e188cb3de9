package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/internal/redirect/origdst"
	"github.com/causeway-mesh/causeway/spec"
)

// preambleTimeout bounds how long a new mesh connection may take to name its
// port before it is dropped.
const preambleTimeout = 10 * time.Second

// inboundConn is what the inbound accept path learned about a connection.
type inboundConn struct {
	port   int32
	caller spiffeid.ID        // verified peer identity; zero for plaintext
	xfcc   string             // X-Forwarded-Client-Cert value for the app, when caller is set
	allow  prometheus.Counter // the caller's allow counter, set by allowed
	// peerTD is the caller's trust domain when it is not this proxy's: a
	// caller in a linked cluster (causeway_inbound_peer_*).
	peerTD string
}

type inboundKey struct{}

// startInbound binds the inbound TCP listener and a UDP socket on the same
// address, and starts their loops.
func (p *Proxy) startInbound() error {
	a := p.boot.Inbound.Listen
	if a == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return fmt.Errorf("inbound.listen: %w", err)
	}
	p.lns = append(p.lns, ln)
	// UDP shares the port number the TCP listener got (matters for ":0").
	ua := ln.Addr().(*net.TCPAddr)
	uc, err := net.ListenUDP("udp", &net.UDPAddr{IP: ua.IP, Port: ua.Port})
	if err != nil {
		return fmt.Errorf("inbound.listen (udp): %w", err)
	}
	p.inUDP = uc
	p.inHS = p.newServer(http.HandlerFunc(p.serveInbound), func(ctx context.Context, c net.Conn) context.Context {
		if tc, ok := c.(*taggedConn); ok {
			return context.WithValue(ctx, inboundKey{}, tc.tag.(*inboundConn))
		}
		return ctx
	})
	p.inCL = newChanListener()
	p.goServe(p.inHS, p.inCL)
	p.wg.Add(2)
	go p.acceptInbound(ln)
	go func() {
		defer p.wg.Done()
		newUDPRelay(p, uc, "inbound", p.inboundUDPTarget).run()
	}()
	return nil
}

// InboundAddr is the inbound listener's address (after Start).
func (p *Proxy) InboundAddr() net.Addr {
	if p.inUDP == nil {
		return nil
	}
	a := p.inUDP.LocalAddr().(*net.UDPAddr)
	return &net.TCPAddr{IP: a.IP, Port: a.Port}
}

func (p *Proxy) acceptInbound(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handleInbound(c)
		}()
	}
}

// handleInbound reads the preamble and hands the connection to the HTTP
// server or the L4 path of the port it names.
func (p *Proxy) handleInbound(raw net.Conn) {
	ic, c, err := p.acceptMesh(raw)
	if errors.Is(err, errNotMesh) && p.boot.Inbound.Transparent {
		p.inboundPassthrough(c)
		return
	}
	if err != nil {
		raw.Close()
		return
	}
	port := ic.port
	st := p.state.Load()
	ib := st.inbound[port]
	if ib == nil {
		c.Close()
		return
	}
	if ib.port.Protocol == spec.ProtocolHTTP {
		p.serveH1(c, nil, ic, p.inCL, ic)
		return
	}
	if ib.port.Protocol.IsHTTP() {
		p.serveHTTPFamily(c, p.inCL, inboundKey{}, ic, p.serveInbound)
		return
	}
	if ib.port.Protocol != spec.ProtocolTCP {
		c.Close()
		return
	}
	// Denied TCP is closed before a byte reaches the app: the app is not
	// even dialled.
	start := time.Now()
	f := flowTap{caller: ic.caller, backend: "app", endpoint: ib.appAddr}
	dec := st.table.Authorize(ic.caller, spec.RouteTCP, port, nil)
	p.countAuthz(ic.caller, dec)
	if !dec.Allowed {
		c.Close()
		p.tapFlow("inbound", ib.name, f, start, "denied", 0, 0)
		return
	}
	app, err := net.DialTimeout("tcp", ib.appAddr, 5*time.Second)
	if err != nil {
		c.Close()
		p.tapFlow("inbound", ib.name, f, start, "failure", 0, 0)
		return
	}
	defer c.Close()
	p.pipe("inbound", ib.name, c, app, f, start)
}

// acceptMesh reads how a mesh connection starts: a TLS ClientHello (mTLS:
// handshake, verified caller, then the preamble inside TLS) or the
// plaintext preamble. With mTLS on, a plaintext caller is refused in strict
// mode and let in, unverified, in permissive mode (issue 4: permissive
// still uses mTLS when both sides can).
func (p *Proxy) acceptMesh(c net.Conn) (*inboundConn, net.Conn, error) {
	_ = c.SetDeadline(time.Now().Add(preambleTimeout))
	var b [preambleLen]byte
	if _, err := io.ReadFull(c, b[:1]); err != nil {
		return nil, nil, err
	}
	switch {
	case b[0] == 0x16 && p.mtls != nil: // TLS record type handshake
		tc := tls.Server(&prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(b[:1]), c)}, p.mtls.server)
		if err := tc.Handshake(); err != nil {
			return nil, nil, fmt.Errorf("inbound mTLS from %s: %w", c.RemoteAddr(), err)
		}
		caller, leaf, err := peerIdentity(tc.ConnectionState())
		if err != nil {
			return nil, nil, err
		}
		own, err := p.mtls.svids.GetX509SVID()
		if err != nil {
			return nil, nil, err
		}
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			return nil, nil, err
		}
		port, err := parsePreamble(b[:])
		if err != nil {
			return nil, nil, err
		}
		_ = c.SetDeadline(time.Time{})
		ic := &inboundConn{port: port, caller: caller, xfcc: xfccValue(own.ID, caller, leaf)}
		if td := caller.TrustDomain(); !caller.IsZero() && td != own.ID.TrustDomain() {
			ic.peerTD = td.Name()
		}
		return ic, meshConn{tc}, nil
	case b[0] == preambleMagic[0]:
		if p.mtls != nil && p.state.Load().cfg.Mode != spec.ModePermissive {
			return nil, nil, errors.New("plaintext caller refused: mTLS required in strict mode")
		}
		if _, err := io.ReadFull(c, b[1:]); err != nil {
			return nil, nil, err
		}
		port, err := parsePreamble(b[:])
		if err != nil {
			// A plaintext client whose first byte happens to be 'C'
			// ("CONNECT ..."): not the mesh; its 8 bytes go back with it.
			_ = c.SetDeadline(time.Time{})
			return nil, &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(b[:]), c)}, fmt.Errorf("inbound from %s: %w (%v)", c.RemoteAddr(), errNotMesh, err)
		}
		_ = c.SetDeadline(time.Time{})
		return &inboundConn{port: port}, c, nil
	}
	// The byte read belongs to the client's protocol: hand it back with the
	// connection for a transparent-mode passthrough.
	_ = c.SetDeadline(time.Time{})
	return nil, &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(b[:1]), c)}, fmt.Errorf("inbound from %s: %w", c.RemoteAddr(), errNotMesh)
}

// errNotMesh is a connection that starts with neither TLS nor a preamble.
var errNotMesh = errors.New("neither TLS nor a Causeway preamble")

// inboundPassthrough serves, in transparent mode, a connection that is
// neither TLS nor the preamble: a client outside the mesh whose connection
// to the pod the PREROUTING REDIRECT sent here. Permissive mode forwards it
// as opaque TCP to AppHost at the port it dialled (SO_ORIGINAL_DST), which
// is the app's port; strict mode closes it, since such a caller cannot
// prove an identity. Either way it is counted. It owns c.
func (p *Proxy) inboundPassthrough(c net.Conn) {
	st := p.state.Load()
	if st.cfg.Mode != spec.ModePermissive {
		p.m.transparent.WithLabelValues("inbound", resultRefused).Inc()
		c.Close()
		return
	}
	tc, ok := underlyingTCP(c)
	if !ok {
		p.m.transparent.WithLabelValues("inbound", resultError).Inc()
		c.Close()
		return
	}
	dst, err := origdst.Get(tc)
	if err != nil {
		p.m.transparent.WithLabelValues("inbound", resultError).Inc()
		c.Close()
		return
	}
	// Not redirected: the client dialled the inbound listener itself, and
	// forwarding to that port on the app host could only loop or miss.
	if la, ok := tc.LocalAddr().(*net.TCPAddr); ok && la.AddrPort().Port() == dst.Port() {
		p.m.transparent.WithLabelValues("inbound", resultRefused).Inc()
		c.Close()
		return
	}
	host := p.boot.Inbound.AppHost
	if host == "" {
		host = "127.0.0.1"
	}
	// handleInbound runs on its own goroutine already; passthrough starts
	// one more so this one's wg slot is released like the other paths.
	p.passthrough(c, "inbound", net.JoinHostPort(host, strconv.Itoa(int(dst.Port()))))
}

// underlyingTCP finds the accepted *net.TCPConn under c's wrappers.
func underlyingTCP(c net.Conn) (*net.TCPConn, bool) {
	for {
		switch x := c.(type) {
		case *net.TCPConn:
			return x, true
		case *prefixConn:
			c = x.Conn
		default:
			return nil, false
		}
	}
}

func (p *Proxy) countAuthz(caller spiffeid.ID, dec spec.AccessDecision) {
	id := "none"
	if !caller.IsZero() {
		id = caller.String()
	}
	d := "deny"
	if dec.Allowed {
		d = "allow"
	}
	p.m.authz.WithLabelValues(id, d).Inc()
}

func (p *Proxy) inboundUDPTarget(first []byte) (udpTarget, int, bool) {
	port, err := parsePreamble(first)
	if err != nil {
		return udpTarget{}, 0, false
	}
	st := p.state.Load()
	ib := st.inbound[port]
	if ib == nil || ib.port.Protocol != spec.ProtocolUDP {
		return udpTarget{}, 0, false
	}
	dec := st.table.Authorize(spiffeid.ID{}, spec.RouteUDP, port, nil)
	p.countAuthz(spiffeid.ID{}, dec)
	if !dec.Allowed {
		return udpTarget{}, 0, false
	}
	return udpTarget{addr: ib.appAddr, service: ib.name}, preambleLen, true
}

type inboundTargetKey struct{}

func (p *Proxy) newInboundReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Director: func(r *http.Request) {
			r.URL.Scheme = "http"
			if _, ok := r.Header["X-Forwarded-For"]; !ok {
				r.Header["X-Forwarded-For"] = nil
			}
		},
		Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			ib := r.Context().Value(inboundTargetKey{}).(*inboundPort)
			r.URL.Host = ib.appAddr
			if ib.port.Protocol == spec.ProtocolHTTP {
				return p.appH1.RoundTrip(r)
			}
			return p.appH2C.RoundTrip(r)
		}),
		BufferPool:   p.bufs,
		ErrorHandler: proxyError,
		ErrorLog:     p.errLog,
	}
}

// xfccHeader carries the verified caller to the app, in Envoy's format.
const xfccHeader = "X-Forwarded-Client-Cert"

// serveInbound authorizes a mesh request with spec.Table.Authorize and
// forwards it to the local app.
func (p *Proxy) serveInbound(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ic, _ := r.Context().Value(inboundKey{}).(*inboundConn)
	st := p.state.Load()
	var ib *inboundPort
	if ic != nil {
		ib = st.inbound[ic.port]
	}
	if ib == nil {
		http.Error(w, "causeway: no inbound port", http.StatusServiceUnavailable)
		return
	}
	dec := st.table.Authorize(ic.caller, spec.RouteHTTP, ic.port, &spec.Request{Method: r.Method, Path: r.URL.Path, Header: r.Header})
	p.countAuthz(ic.caller, dec)
	route := dec.Match
	if route == "" {
		route = "default"
	}
	p.m.requests.WithLabelValues("inbound", ib.name, route, "app").Inc()
	rec := recorderPool.Get().(*recorder)
	rec.ResponseWriter, rec.status = w, 0
	// Whatever the caller claims about client certificates is dropped; only
	// what this proxy verified reaches the app.
	r.Header.Del(xfccHeader)
	var aborted error
	if !dec.Allowed {
		http.Error(rec, "causeway: forbidden: "+dec.Reason, http.StatusForbidden)
	} else {
		if !ic.caller.IsZero() {
			r.Header.Set(xfccHeader, ic.xfcc)
		}
		if isUpgrade(r) {
			p.inRP.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), inboundTargetKey{}, ib)))
		} else {
			prepareOutbound(r)
			r.URL.Host = ib.appAddr
			var t http.RoundTripper = p.appH2
			if ib.port.Protocol == spec.ProtocolHTTP {
				t = p.appFast
			}
			resp, err := t.RoundTrip(r)
			if err != nil {
				proxyError(rec, r, err)
			} else {
				aborted = p.writeResponse(rec, resp)
			}
		}
	}
	status, gs := rec.status, grpcStatus(w.Header())
	if status == 0 {
		status = http.StatusSwitchingProtocols
	}
	class := classify(status, gs)
	if aborted != nil {
		class = "failure"
	}
	elapsed := time.Since(start)
	p.m.responses.WithLabelValues("inbound", ib.name, route, "app", p.m.status(status), gs, class).Inc()
	p.m.latency.WithLabelValues("inbound", ib.name, "app", class).Observe(elapsed.Seconds())
	if ic.peerTD != "" {
		p.m.peer.WithLabelValues(ib.name, ic.peerTD, class).Observe(elapsed.Seconds())
	}
	if p.tap.active() {
		caller := ""
		if !ic.caller.IsZero() {
			caller = ic.caller.String()
		}
		p.tap.publish(&TapEvent{Time: start, Direction: "inbound", Service: ib.name, Route: route, Backend: "app",
			Endpoint: ib.appAddr, Caller: caller, Method: r.Method, Authority: r.Host, Path: r.URL.Path,
			Status: status, GRPCStatus: gs, Classification: class, LatencyMs: float64(elapsed.Microseconds()) / 1000})
	}
	rec.ResponseWriter = nil
	recorderPool.Put(rec)
	if aborted != nil {
		panic(http.ErrAbortHandler)
	}
}
