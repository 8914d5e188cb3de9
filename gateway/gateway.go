package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/proxy/balance"
	"github.com/causeway-mesh/causeway/spec"
)

// Options configure a Gateway. SVIDs and Bundles are required.
type Options struct {
	// Listen is the east-west TLS address, e.g. ":15443" ("127.0.0.1:0" in
	// tests: Addr says what was bound).
	Listen string
	// Admin serves /ready /live /metrics /config; "" runs no admin server.
	Admin string
	// SVIDs is the gateway's identity; Bundles are the trust domains whose
	// callers it accepts: its own and every federated one. A
	// workloadapi.X509Source is both, and follows rotations and links.
	SVIDs   x509svid.Source
	Bundles x509bundle.Source
	// HandshakeTimeout bounds a caller's TLS handshake (default 10s);
	// DialTimeout bounds connecting to the destination (default 5s).
	HandshakeTimeout time.Duration
	DialTimeout      time.Duration
	// BundlesUpdated, when set, fires whenever Bundles may have changed
	// (workloadapi.X509Source.Updated): relayed connections whose caller's
	// trust domain no longer has a bundle (the link was removed) are then
	// closed, not only new handshakes refused.
	BundlesUpdated <-chan struct{}
	Logger         *slog.Logger
}

// Gateway is one east-west gateway. New starts it serving; Apply gives it
// configs; Close stops it.
type Gateway struct {
	opts   Options
	log    *slog.Logger
	errLog *log.Logger
	m      *metrics
	tls    *tls.Config
	own    spiffeid.TrustDomain
	dialer net.Dialer

	// state is the routing state in force; nil before the first Apply.
	state atomic.Pointer[state]

	// mu serialises Apply and guards balancers.
	mu        sync.Mutex
	balancers map[portKey]*balance.Balancer

	ln      net.Listener
	adminLn net.Listener
	admin   *http.Server

	// conns holds every live connection (callers and destinations) with the
	// exported port it is relayed to (zero while still being checked), so
	// Close can end them all and Apply can end those whose port is no
	// longer exported.
	connMu sync.Mutex
	conns  map[net.Conn]portKey
	// callers maps each relayed caller connection to its trust domain, for
	// closing it when that trust domain's bundle goes.
	callers map[net.Conn]spiffeid.TrustDomain
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// New binds the listeners and starts serving. Until the first Apply every
// connection is refused (no_config) and /ready answers 503.
func New(opts Options) (*Gateway, error) {
	if opts.SVIDs == nil || opts.Bundles == nil {
		return nil, errors.New("gateway: Options.SVIDs and Options.Bundles are required: the gateway is mTLS only")
	}
	if opts.Listen == "" {
		return nil, errors.New("gateway: Options.Listen is empty")
	}
	svid, err := opts.SVIDs.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("gateway: own SVID: %w", err)
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	g := &Gateway{
		opts:      opts,
		log:       lg,
		errLog:    slog.NewLogLogger(lg.Handler(), slog.LevelDebug),
		m:         newMetrics(),
		own:       svid.ID.TrustDomain(),
		dialer:    net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second},
		balancers: map[portKey]*balance.Balancer{},
		conns:     map[net.Conn]portKey{},
		callers:   map[net.Conn]spiffeid.TrustDomain{},
		stop:      make(chan struct{}),
	}
	// Authentication only: any caller holding an SVID from a trust domain
	// whose bundle the gateway has. What it may reach is decided by the SNI
	// checks below; whether it may use the service is the destination
	// sidecar's TrafficTarget decision, made on the inner mTLS identity.
	g.tls = tlsconfig.MTLSServerConfig(opts.SVIDs, trustedBundles{opts.Bundles}, tlsconfig.AuthorizeAny())
	if g.ln, err = net.Listen("tcp", opts.Listen); err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", opts.Listen, err)
	}
	if opts.Admin != "" {
		if g.adminLn, err = net.Listen("tcp", opts.Admin); err != nil {
			g.ln.Close()
			return nil, fmt.Errorf("gateway: admin listen %s: %w", opts.Admin, err)
		}
		g.admin = &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: g.errLog}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			_ = g.admin.Serve(g.adminLn)
		}()
	}
	g.wg.Add(1)
	go g.accept()
	if opts.BundlesUpdated != nil {
		g.wg.Add(1)
		go g.watchBundles()
	}
	return g, nil
}

// Addr is the east-west listener's address.
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// AdminAddr is the admin server's address, or nil without one.
func (g *Gateway) AdminAddr() net.Addr {
	if g.adminLn == nil {
		return nil
	}
	return g.adminLn.Addr()
}

// TrustDomain is the gateway's own trust domain (from its SVID): the only
// one an SNI may name.
func (g *Gateway) TrustDomain() spiffeid.TrustDomain { return g.own }

// Apply makes cfg the config in force, atomically: connections routed from
// now on see all of it. Connections already relayed keep their destination
// through endpoint changes, but those to a port that is no longer exported
// are closed: withdrawing an export withdraws it from live connections too,
// not only from new ones. A config that fails its checks is refused with
// the reason and the previous one stays.
func (g *Gateway) Apply(cfg *spec.NodeConfig) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	st, err := buildState(cfg, g.own, g.balancers)
	if err != nil {
		g.m.configs.WithLabelValues(resultRefusedConfig).Inc()
		return err
	}
	for _, svc := range st.services {
		for _, p := range svc.ports {
			p.lb.Update(p.addrs)
		}
	}
	g.state.Store(st)
	g.m.configs.WithLabelValues(resultApplied).Inc()
	g.connMu.Lock()
	for c, pk := range g.conns {
		if pk != (portKey{}) && !st.exports(pk) {
			c.Close()
		}
	}
	g.connMu.Unlock()
	return nil
}

// Close stops accepting, ends every relayed connection and the admin
// server, and returns when every goroutine the gateway started is gone.
func (g *Gateway) Close() error {
	g.connMu.Lock()
	if g.closed {
		g.connMu.Unlock()
		return nil
	}
	g.closed = true
	close(g.stop)
	for c := range g.conns {
		c.Close()
	}
	g.connMu.Unlock()
	err := g.ln.Close()
	if g.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = g.admin.Shutdown(ctx)
		cancel()
		g.admin.Close()
	}
	g.wg.Wait()
	return err
}

func (g *Gateway) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and the like: back off a little rather than spin.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if !g.track(c) {
			g.m.refused.WithLabelValues(ReasonShuttingDown).Inc()
			c.Close()
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer g.untrack(c)
			defer c.Close()
			g.serve(c)
		}()
	}
}

// track registers a live connection so Close can end it; it refuses once
// the gateway is closing.
func (g *Gateway) track(cs ...net.Conn) bool {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if g.closed {
		return false
	}
	for _, c := range cs {
		g.conns[c] = portKey{}
	}
	return true
}

// relaying marks raw and dst as relayed to pk. It reports false when the
// port is no longer exported by the state now in force: Apply stores the
// state before it sweeps, so a connection is either swept or sees the new
// state here.
func (g *Gateway) relaying(pk portKey, callerTD spiffeid.TrustDomain, caller, dst net.Conn) bool {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	if g.closed {
		return false
	}
	g.conns[caller], g.conns[dst] = pk, pk
	if !callerTD.IsZero() {
		g.callers[caller] = callerTD
	}
	return g.state.Load().exports(pk)
}

func (g *Gateway) untrack(cs ...net.Conn) {
	g.connMu.Lock()
	for _, c := range cs {
		delete(g.conns, c)
		delete(g.callers, c)
	}
	g.connMu.Unlock()
}

// watchBundles closes relayed connections whose caller's trust domain lost
// its bundle, each time the bundles change, until Close.
func (g *Gateway) watchBundles() {
	defer g.wg.Done()
	for {
		select {
		case <-g.stop:
			return
		case <-g.opts.BundlesUpdated:
			g.revoke()
		}
	}
}

// revoke closes every relayed caller whose trust domain has no bundle now.
func (g *Gateway) revoke() {
	g.connMu.Lock()
	defer g.connMu.Unlock()
	for c, td := range g.callers {
		if _, err := g.opts.Bundles.GetX509BundleForTrustDomain(td); err != nil {
			// Counted before the close: whoever sees the connection end
			// (the caller, a test) may read the counter right after.
			g.m.revoked.Inc()
			c.Close()
			delete(g.callers, c)
			g.log.Info("gateway: closed a connection whose trust domain is no longer linked", "trust_domain", td, "peer", c.RemoteAddr())
		}
	}
}

func (g *Gateway) refuse(reason string) { g.m.refused.WithLabelValues(reason).Inc() }

// serve runs one caller's connection: handshake, SNI checks, endpoint
// choice, dial, relay. It runs on the connection's own goroutine, so a slow
// handshake stalls no one else; raw is closed by the caller.
func (g *Gateway) serve(raw net.Conn) {
	_ = raw.SetDeadline(time.Now().Add(g.opts.HandshakeTimeout))
	tc := tls.Server(raw, g.tls)
	if err := tc.Handshake(); err != nil {
		g.refuse(handshakeReason(err))
		g.log.Debug("gateway: handshake refused", "peer", raw.RemoteAddr(), "err", err)
		return
	}
	_ = raw.SetDeadline(time.Time{})
	cs := tc.ConnectionState()
	var callerTD spiffeid.TrustDomain
	if len(cs.PeerCertificates) > 0 {
		if id, err := x509svid.IDFromCert(cs.PeerCertificates[0]); err == nil {
			callerTD = id.TrustDomain()
		}
	}
	t, err := ParseSNI(cs.ServerName)
	if err != nil {
		g.refuse(ReasonBadSNI)
		return
	}
	if t.TrustDomain != g.own {
		g.refuse(ReasonForeignTD)
		return
	}
	st := g.state.Load()
	if st == nil {
		g.refuse(ReasonNoConfig)
		return
	}
	ep, reason := st.lookup(t)
	if ep == nil {
		g.refuse(reason)
		return
	}
	pick, err := ep.lb.Pick()
	if err != nil {
		g.refuse(ReasonNoEndpoint)
		return
	}
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), g.opts.DialTimeout)
	dst, err := g.dialer.DialContext(ctx, "tcp", pick.Addr)
	cancel()
	rtt := time.Since(t0)
	if err != nil {
		pick.Done(rtt, true)
		g.refuse(ReasonDialFailed)
		g.log.Debug("gateway: destination refused", "service", ep.name, "endpoint", pick.Addr, "err", err)
		return
	}
	// The pick stays in flight for the connection's life, so the
	// balancer's in-flight penalty spreads long-lived connections; its
	// latency sample is the connect time.
	defer pick.Done(rtt, false)
	defer dst.Close()
	defer g.untrack(dst)
	if !g.relaying(ep.key, callerTD, raw, dst) {
		return
	}
	g.m.forwarded.WithLabelValues(ep.name).Inc()
	g.m.active.Inc()
	in, out := relay(tc, dst.(*net.TCPConn))
	g.m.active.Dec()
	g.m.bytes.WithLabelValues(ep.name, "in").Add(float64(in))
	g.m.bytes.WithLabelValues(ep.name, "out").Add(float64(out))
}

// handshakeReason tells a plaintext caller and one from an unlinked trust
// domain apart from other TLS failures.
func handshakeReason(err error) string {
	var rh tls.RecordHeaderError
	var ut *untrustedError
	switch {
	case errors.As(err, &rh):
		return ReasonNotTLS
	case errors.As(err, &ut):
		return ReasonUntrusted
	}
	return ReasonHandshake
}

// trustedBundles marks the error of a trust domain the gateway has no
// bundle for, so the refusal can be counted as an unlinked caller; go-spiffe
// and crypto/tls keep the chain (%w) up to Handshake's error.
type trustedBundles struct{ x509bundle.Source }

type untrustedError struct {
	td  spiffeid.TrustDomain
	err error
}

func (e *untrustedError) Error() string {
	return fmt.Sprintf("caller's trust domain %s is not linked: %v", e.td, e.err)
}
func (e *untrustedError) Unwrap() error { return e.err }

func (b trustedBundles) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	bd, err := b.Source.GetX509BundleForTrustDomain(td)
	if err != nil {
		return nil, &untrustedError{td: td, err: err}
	}
	return bd, nil
}
