package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/proxy/resilience"
	"github.com/causeway-mesh/causeway/spec"
)

// Options are what a caller can plug in besides the bootstrap.
type Options struct {
	Logger *slog.Logger
	// SVIDs and Bundles turn on mTLS between proxies: outbound to endpoints
	// with an Identity, and inbound, where the verified caller is what
	// Table.Authorize judges. workloadapi.X509Source implements both. Nil
	// leaves the mesh plaintext (and strict-mode inbound denies everything,
	// since no caller is verified).
	SVIDs   x509svid.Source
	Bundles x509bundle.Source
}

// Proxy is one sidecar. Create with New, Start it, feed it NodeConfigs with
// Apply, Close it.
type Proxy struct {
	boot   *Bootstrap
	log    *slog.Logger
	errLog *log.Logger
	m      *metrics
	tap    *tapHub
	bufs   *bufPool
	mtls   *meshTLS

	// state is the routing state in force; the only thing requests read.
	state atomicState

	// mu serialises Apply and guards the registries and listeners.
	mu        sync.Mutex
	clusters  map[clusterKey]*clusterPort
	upstreams map[spec.Key]*upstreamPolicy
	fixed     map[int]*fixedListener // by index in Bootstrap.Outbound.Ports
	started   bool

	outRP   *httputil.ReverseProxy
	inRP    *httputil.ReverseProxy
	appH1   *http.Transport // inbound to the local app, HTTP/1.1
	appH2C  *http.Transport // inbound to the local app, h2c prior knowledge (Upgrade requests)
	appH2   *h2Pool         // inbound to the local app, h2c prior knowledge
	appFast *h1Client       // inbound to the local app, HTTP/1.1 hot path
	servers []*http.Server
	h1      h1Server  // the HTTP/1.1 fast path's connections
	h2s     h2Servers // the HTTP/2 server's connections
	lns     []net.Listener
	udps    []*udpRelay
	inUDP   *net.UDPConn
	fixedHS *http.Server  // serves HTTP on every fixed port
	fixedCL *chanListener // hands it the connections
	inHS    *http.Server
	inCL    *chanListener
	admin   *http.Server
	adminLn net.Listener
	fwdLn   net.Listener
	trLn    net.Listener // outbound.transparent

	connMu sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// New makes a proxy from a validated bootstrap. It binds nothing; Start does.
func New(b *Bootstrap, opts Options) *Proxy {
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	p := &Proxy{
		boot:      b,
		log:       lg,
		errLog:    slog.NewLogLogger(lg.Handler(), slog.LevelDebug),
		m:         newMetrics(),
		tap:       &tapHub{},
		bufs:      newBufPool(),
		clusters:  map[clusterKey]*clusterPort{},
		upstreams: map[spec.Key]*upstreamPolicy{},
		fixed:     map[int]*fixedListener{},
		conns:     map[net.Conn]struct{}{},
		done:      make(chan struct{}),
	}
	p.state.Store(emptyState())
	if opts.SVIDs != nil && opts.Bundles != nil {
		p.mtls = newMeshTLS(opts.SVIDs, opts.Bundles)
	}
	p.m.breakers.src = p.circuitStates
	p.m.picks.src = p.priorityPicks
	p.outRP = p.newOutboundReverseProxy()
	p.inRP = p.newInboundReverseProxy()
	pol := b.Policy.merge(DefaultPolicy)
	p.appH1 = newTransport(spec.ProtocolHTTP, pol, (&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	p.appH2C = newTransport(spec.ProtocolHTTP2, pol, (&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	p.appH2 = newH2Pool((&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	p.appFast = newH1Client((&net.Dialer{Timeout: 5 * time.Second}).DialContext, pol.MaxIdleConnsPerHost)
	return p
}

// Metrics serves the proxy's own Prometheus registry (as /metrics does).
func (p *Proxy) Metrics() http.Handler { return p.metricsHandler() }

// Start binds the admin, inbound and forward-proxy listeners, applies the
// bootstrap's NodeConfig (binding the fixed ports) and starts serving.
func (p *Proxy) Start() error {
	p.mu.Lock()
	p.started = true
	p.mu.Unlock()
	p.fixedHS = p.newServer(http.HandlerFunc(p.serveFixed), func(ctx context.Context, c net.Conn) context.Context {
		if fc, ok := c.(*taggedConn); ok {
			return context.WithValue(ctx, fixedKey{}, fc.tag.(*fixedListener))
		}
		return ctx
	})
	p.fixedCL = newChanListener()
	p.goServe(p.fixedHS, p.fixedCL)
	if err := p.startAdmin(); err != nil {
		p.Close()
		return err
	}
	if p.boot.Config != nil {
		if err := p.Apply(p.boot.Config); err != nil {
			p.Close()
			return err
		}
	} else {
		// No config yet (it will come from the control plane): bind the
		// fixed ports as TCP now so a port conflict shows at start.
		p.mu.Lock()
		bound, err := p.bindFixed(p.state.Load().table)
		if err == nil {
			p.swapFixed(bound)
		}
		p.mu.Unlock()
		if err != nil {
			p.Close()
			return err
		}
	}
	if err := p.startInbound(); err != nil {
		p.Close()
		return err
	}
	if err := p.startTransparent(); err != nil {
		p.Close()
		return err
	}
	if a := p.boot.Outbound.HTTPProxy; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			p.Close()
			return fmt.Errorf("outbound.httpProxy: %w", err)
		}
		p.fwdLn = ln
		p.serveHTTP(ln, http.HandlerFunc(p.serveForward), nil)
	}
	return nil
}

// newServer makes an http.Server speaking HTTP/1.1 and h2c (prior knowledge).
func (p *Proxy) newServer(h http.Handler, connCtx func(context.Context, net.Conn) context.Context) *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s := &http.Server{
		Handler:           h,
		Protocols:         &protos,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          p.errLog,
		ConnContext:       connCtx,
	}
	p.servers = append(p.servers, s)
	return s
}

func (p *Proxy) serveHTTP(ln net.Listener, h http.Handler, connCtx func(context.Context, net.Conn) context.Context) *http.Server {
	s := p.newServer(h, connCtx)
	p.lns = append(p.lns, ln)
	p.goServe(s, ln)
	return s
}

func (p *Proxy) goServe(s *http.Server, ln net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = s.Serve(ln)
	}()
}

// Apply puts a NodeConfig in force: prepare its Table, bind the listeners it
// needs, swap the routing state. On any error the config is refused, the
// reason returned, and the old config serves on.
func (p *Proxy) Apply(cfg *spec.NodeConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cfg == nil {
		return errors.New("config: nil NodeConfig")
	}
	version, err := p.apply(cfg)
	if err != nil {
		p.m.configs.WithLabelValues("refused").Inc()
		p.log.Warn("config refused", "version", version, "err", err)
		return err
	}
	p.m.configs.WithLabelValues("applied").Inc()
	p.log.Info("config applied", "version", version)
	return nil
}

func (p *Proxy) apply(cfg *spec.NodeConfig) (string, error) {
	if cfg.Version == "" {
		// A hand-written config may leave the version out; name it by content.
		c := *cfg
		b, _ := json.Marshal(&c)
		sum := sha256.Sum256(b)
		c.Version = "sha256:" + hex.EncodeToString(sum[:8])
		cfg = &c
	}
	t, err := cfg.Prepare()
	if err != nil {
		return cfg.Version, fmt.Errorf("config %s: %w", cfg.Version, err)
	}
	var bound []*fixedListener
	if p.started {
		if bound, err = p.bindFixed(t); err != nil {
			return cfg.Version, fmt.Errorf("config %s: %w", cfg.Version, err)
		}
	}
	st := p.buildState(cfg, t)
	p.state.Store(st)
	p.sweep(st)
	p.swapFixed(bound)
	return cfg.Version, nil
}

// Config returns the NodeConfig in force (nil before the first Apply).
func (p *Proxy) Config() *spec.NodeConfig {
	if st := p.state.Load(); st.ready {
		return st.cfg
	}
	return nil
}

// circuitStates lists every cluster port's breaker, for /metrics.
func (p *Proxy) circuitStates() map[string]resilience.State {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]resilience.State, len(p.clusters))
	for _, cp := range p.clusters {
		out[cp.name] = cp.breaker.State()
	}
	return out
}

// Close stops every listener, ends L4 flows and waits for the goroutines the
// proxy started. In-flight HTTP requests get up to 5 s to finish.
func (p *Proxy) Close() error {
	p.connMu.Lock()
	if p.closed {
		p.connMu.Unlock()
		return nil
	}
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.connMu.Unlock()
	close(p.done)

	p.mu.Lock()
	for _, fl := range p.fixed {
		fl.close()
	}
	p.fixed = map[int]*fixedListener{}
	p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	if p.inUDP != nil {
		p.inUDP.Close()
	}
	if p.fixedCL != nil {
		p.fixedCL.Close()
	}
	if p.inCL != nil {
		p.inCL.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.h1.shutdown(ctx)
	p.h2s.shutdown(ctx)
	for _, s := range p.servers {
		_ = s.Shutdown(ctx)
	}
	p.wg.Wait()
	p.h2s.stopWorkers()
	p.mu.Lock()
	for _, cp := range p.clusters {
		cp.close()
		closeH2(cp)
	}
	p.mu.Unlock()
	p.appH1.CloseIdleConnections()
	p.appH2C.CloseIdleConnections()
	p.appH2.closeIdle()
	p.appFast.close()
	return nil
}
