package configsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/spec"
)

// Options configure a Client.
type Options struct {
	// Addr is the control plane's gRPC address, host:port.
	Addr string
	// Node says who this proxy is. Over mTLS Node.Identity may be left zero:
	// the control plane takes it from the SVID.
	Node spec.Node
	// AdminAddress is this proxy's admin server, for metrics scraping.
	AdminAddress string
	// Creds secure the connection; build them with MTLS. Nil dials in
	// plaintext: INSECURE, for loopback tests and --insecure only.
	Creds credentials.TransportCredentials
	// Apply installs a config. A nil error ACKs it; an error NACKs it with
	// the error's text, and the proxy keeps what it had. Apply is called
	// from Run's goroutine, one config at a time.
	Apply   func(*spec.NodeConfig) error
	Backoff Backoff
	Logger  *slog.Logger
}

// MTLS gives client credentials that present the proxy's SVID and accept a
// control plane whose SVID authorize approves (tlsconfig.AuthorizeID of the
// control plane, or AuthorizeMemberOf its trust domain).
func MTLS(svid x509svid.Source, bundle x509bundle.Source, authorize tlsconfig.Authorizer) credentials.TransportCredentials {
	return grpccredentials.MTLSClientCredentials(svid, bundle, authorize)
}

// Backoff is the wait between reconnects: exponential from Initial to Max,
// with the upper half jittered so a fleet of proxies that lost the same
// control plane does not reconnect in lockstep.
type Backoff struct {
	Initial time.Duration // 0 means 100ms
	Max     time.Duration // 0 means 5s
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 5 * time.Second
	}
	return b
}

// Delay is the wait before reconnect attempt n (0-based): d/2 + rand[0, d/2)
// where d = min(Max, Initial*2^n).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := b.Max
	if n < 32 {
		if e := b.Initial << n; e > 0 && e < b.Max {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half)
}

// Status is what a Client knows about its link to the control plane.
type Status struct {
	Connected bool
	// Version is the config version last applied (ACKed); "" before one.
	Version string
	// LastError is the last stream or apply error; nil after a success.
	LastError error
	// Reconnects counts sessions started after the first.
	Reconnects int
}

// Client keeps a proxy's config in step with the control plane. It never
// imports the proxy: it calls Options.Apply.
type Client struct {
	opts    Options
	log     *slog.Logger
	creds   credentials.TransportCredentials
	session func(ctx context.Context) (progressed bool, err error) // replaced in tests
	sleep   func(ctx context.Context, d time.Duration) error

	mu     sync.Mutex
	status Status
}

// New checks opts and makes a client; Run starts it.
func New(opts Options) (*Client, error) {
	if opts.Addr == "" {
		return nil, errors.New("configsource: Addr is empty")
	}
	if opts.Node.ID == "" {
		return nil, errors.New("configsource: Node.ID is empty")
	}
	if opts.Apply == nil {
		return nil, errors.New("configsource: Apply is nil")
	}
	c := &Client{opts: opts, log: opts.Logger, creds: opts.Creds}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.creds == nil {
		c.creds = insecure.NewCredentials()
	}
	c.session = c.stream
	c.sleep = sleepCtx
	return c, nil
}

// Status returns a copy of the client's status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// Run keeps one stream to the control plane open, reconnecting with
// jittered exponential backoff, until ctx ends. While the control plane is
// away nothing is applied, so the proxy keeps serving its last good config.
func (c *Client) Run(ctx context.Context) error {
	failures := 0
	for sessions := 0; ; sessions++ {
		if sessions > 0 {
			c.update(func(s *Status) { s.Reconnects++ })
		}
		progressed, err := c.session(ctx)
		c.update(func(s *Status) {
			s.Connected = false
			if err != nil {
				s.LastError = err
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		// A session that got a config (or stayed up a while) proves the
		// control plane is back: start the next backoff from the bottom.
		if progressed {
			failures = 0
		}
		d := c.opts.Backoff.Delay(failures)
		// One line when the control plane goes away; the retries of a long
		// outage log at debug so they do not flood the proxy's log.
		lvl := slog.LevelDebug
		if failures == 0 {
			lvl = slog.LevelWarn
		}
		failures++
		c.log.Log(ctx, lvl, "configsource: control plane unavailable; keeping the last config", "addr", c.opts.Addr, "retry_in", d, "err", err)
		if err := c.sleep(ctx, d); err != nil {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (c *Client) update(f func(*Status)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.status)
}

// stream is one session: dial, say who we are, then apply and answer every
// config until the stream breaks.
func (c *Client) stream(ctx context.Context) (progressed bool, err error) {
	conn, err := grpc.NewClient(c.opts.Addr, grpc.WithTransportCredentials(c.creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}))
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", c.opts.Addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	started := time.Now()
	defer func() {
		// A stream that lived longer than the backoff cap was healthy even if
		// the control plane had nothing new to send.
		if time.Since(started) > c.opts.Backoff.withDefaults().Max {
			progressed = true
		}
	}()

	st, err := configv1.NewConfigServiceClient(conn).StreamConfig(ctx)
	if err != nil {
		return false, fmt.Errorf("open stream to %s: %w", c.opts.Addr, err)
	}
	applied := c.Status().Version
	first := &configv1.StreamConfigRequest{Node: configv1.NodeFromSpec(c.opts.Node, c.opts.AdminAddress), VersionInfo: applied}
	if err := st.Send(first); err != nil {
		return false, fmt.Errorf("send node to %s: %w", c.opts.Addr, err)
	}
	c.update(func(s *Status) { s.Connected = true })
	for {
		resp, err := st.Recv()
		if err != nil {
			return progressed, fmt.Errorf("config stream from %s: %w", c.opts.Addr, err)
		}
		progressed = true
		ack := &configv1.StreamConfigRequest{ResponseNonce: resp.GetNonce(), VersionInfo: applied}
		cfg, err := resp.GetConfig().ToSpec()
		if err == nil && cfg.Version != resp.GetVersionInfo() {
			err = fmt.Errorf("config version %q differs from the response's version_info %q", cfg.Version, resp.GetVersionInfo())
		}
		if err == nil {
			err = c.opts.Apply(cfg)
		}
		if err != nil {
			ack.ErrorDetail = err.Error()
			c.log.Warn("configsource: config refused", "version", resp.GetVersionInfo(), "err", err)
			c.update(func(s *Status) { s.LastError = err })
		} else {
			applied = cfg.Version
			ack.VersionInfo = applied
			c.update(func(s *Status) { s.Version, s.LastError = applied, nil })
			c.log.Info("configsource: config applied", "version", applied)
		}
		if err := st.Send(ack); err != nil {
			return progressed, fmt.Errorf("send ack to %s: %w", c.opts.Addr, err)
		}
	}
}
