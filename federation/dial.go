package federation

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	fedv1 "github.com/causeway-mesh/causeway/api/federation/v1"
	"github.com/causeway-mesh/causeway/spec"
)

// Apply peers with the cluster that issued tok: it dials the token's
// addresses, authenticates the server with the token's bundle, proves
// itself with the token's secret and its own SVID and bundle, and on
// success keeps the stream running (reconnecting as needed) until the link
// is removed or Close. The returned error carries the issuer's reason when
// it refused (expired, used, unknown token).
func (l *Links) Apply(ctx context.Context, tok Token) (Status, error) {
	if !time.Now().Before(tok.Expires) {
		return Status{}, fmt.Errorf("peering token %s expired at %s; generate a new one", tok.ID, tok.Expires.UTC().Format(time.RFC3339))
	}
	if tok.Cluster == l.opts.Cluster || tok.TrustDomain == l.opts.TrustDomain.Name() {
		return Status{}, fmt.Errorf("peering token %s names this cluster (%s, %s)", tok.ID, tok.Cluster, tok.TrustDomain)
	}
	td, err := spiffeid.TrustDomainFromString(tok.TrustDomain)
	if err != nil {
		return Status{}, fmt.Errorf("peering token %s: trustDomain: %w", tok.ID, err)
	}
	roots, err := parseRoots([]byte(tok.Bundle))
	if err != nil {
		return Status{}, fmt.Errorf("peering token %s: bundle: %w", tok.ID, err)
	}
	trust := x509bundle.FromX509Authorities(td, roots)
	var errs []error
	for _, addr := range tok.Addrs {
		c, err := l.connect(ctx, addr, tok.Cluster, td, spiffeid.ID{}, trust, &tok)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		lk := l.addLink(tok.Cluster, td, c.peerID, roots, slices.Clone(tok.Addrs))
		l.startDialler(lk, c)
		l.log.Info("federation: peered", "peer", tok.Cluster, "trustDomain", td.Name(), "addr", addr)
		return l.status(tok.Cluster), nil
	}
	return Status{}, fmt.Errorf("peering with cluster %q: %w", tok.Cluster, errors.Join(errs...))
}

func (l *Links) status(cluster string) Status {
	for _, s := range l.List() {
		if s.Cluster == cluster {
			return s
		}
	}
	return Status{Cluster: cluster}
}

// conn is a dialled stream past the Hello exchange.
type conn struct {
	cc     *grpc.ClientConn
	peerID spiffeid.ID // the server's SPIFFE ID
	st     grpc.BidiStreamingClient[fedv1.PeerMessage, fedv1.PeerMessage]
	cancel context.CancelFunc
}

func (c *conn) close() {
	c.cancel()
	_ = c.cc.Close()
}

// connect dials addr with mTLS (our SVID; the server must chain to trust
// and be want, or on first contact any member of td) and exchanges Hellos;
// tok, when set, makes it a first contact with a peering proof. The stream
// outlives ctx: it ends with Links or conn.close.
func (l *Links) connect(ctx context.Context, addr, cluster string, td spiffeid.TrustDomain, want spiffeid.ID, trust x509bundle.Source, tok *Token) (*conn, error) {
	var mu sync.Mutex
	var serverID spiffeid.ID
	authorize := func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if !id.MemberOf(td) || (!want.IsZero() && id != want) {
			return fmt.Errorf("server %s is not the control plane of cluster %q (%s)", id, cluster, cmp.Or(want.String(), td.Name()))
		}
		mu.Lock()
		serverID = id
		mu.Unlock()
		return nil
	}
	cfg := tlsconfig.MTLSClientConfig(l.opts.SVID, trust, authorize)
	cfg.MinVersion = tls.VersionTLS13
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	sctx, cancel := context.WithCancel(l.ctx)
	c := &conn{cc: cc, cancel: cancel}
	ok := false
	defer func() {
		if !ok {
			c.close()
		}
	}()
	stop := context.AfterFunc(ctx, cancel) // the caller's deadline bounds the handshake only
	defer stop()
	c.st, err = fedv1.NewFederationServiceClient(cc).Peer(sctx, grpc.WaitForReady(false))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	var p *fedv1.Peering
	if tok != nil {
		svid, err := l.opts.SVID.GetX509SVID()
		if err != nil {
			return nil, fmt.Errorf("own SVID: %w", err)
		}
		bundlePEM := encodeRoots(l.opts.Bundle.Bundle().X509Authorities())
		p = &fedv1.Peering{TokenId: tok.ID, Bundle: bundlePEM,
			Proof: proof(tok.Secret, tok.ID, l.opts.Cluster, l.opts.TrustDomain.Name(), bundlePEM, svid.Certificates[0].Raw)}
	}
	if err := c.st.Send(l.hello(p)); err != nil {
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	h, err := recvHello(sctx, c.st)
	if err != nil {
		if s, isStatus := status.FromError(err); isStatus {
			return nil, fmt.Errorf("%s: refused: %s", addr, s.Message())
		}
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	if h.Cluster != cluster || h.TrustDomain != td.Name() {
		return nil, fmt.Errorf("%s: answered as cluster %q (%s), want %q (%s)", addr, h.Cluster, h.TrustDomain, cluster, td)
	}
	mu.Lock()
	c.peerID = serverID
	mu.Unlock()
	ok = true
	return c, nil
}

// startDialler owns the link's outgoing stream: it runs first, then
// reconnects with jittered exponential backoff until the link is removed,
// revoked or Links closes.
func (l *Links) startDialler(lk *link, first *conn) {
	ctx, cancel := context.WithCancel(l.ctx)
	l.mu.Lock()
	lk.stopDial = cancel
	removed := lk.removed
	l.mu.Unlock()
	if removed {
		cancel()
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		c := first
		delay := l.opts.BackoffBase
		for {
			if c != nil {
				stop := context.AfterFunc(ctx, c.cancel)
				err := l.run(ctx, lk, c.st)
				stop()
				c.close()
				if errors.Is(err, errRevoked) || ctx.Err() != nil {
					return
				}
				l.log.Warn("federation: stream to peer ended; reconnecting", "peer", lk.cluster, "err", err)
				delay = l.opts.BackoffBase
			}
			var wait time.Duration
			wait, delay = backoff(delay, l.opts.BackoffMax)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			var err error
			c, err = l.reconnect(ctx, lk)
			if err != nil {
				if refusedNotLinked(err) {
					l.drop(lk, "the peer has no link with us: "+err.Error())
					return
				}
				l.log.Debug("federation: reconnect failed", "peer", lk.cluster, "err", err, "retryIn", delay)
			}
		}
	}()
}

// backoff returns how long to wait before the next attempt, jittered
// uniformly over [delay/2, 3·delay/2) so peers restarted together do not
// reconnect in lockstep, and the delay after it, doubled up to limit.
func backoff(delay, limit time.Duration) (wait, next time.Duration) {
	return delay/2 + rand.N(delay), min(2*delay, limit)
}

func refusedNotLinked(err error) bool {
	return err != nil && strings.Contains(err.Error(), "refused: "+notLinked)
}

// reconnect dials a linked peer: plain SPIFFE mTLS, the server checked
// against the peer's bundle in the federated set (kept fresh by its exports).
func (l *Links) reconnect(ctx context.Context, lk *link) (*conn, error) {
	l.mu.Lock()
	addrs := slices.Clone(lk.addrs)
	l.mu.Unlock()
	var errs []error
	for _, a := range addrs {
		hctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
		c, err := l.connect(hctx, a, lk.cluster, lk.td, lk.peerID, l.opts.Federated, nil)
		cancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// markFailed is the heartbeat timeout: a link silent for longer than
// Timeout is failed and its endpoints are no longer ready, but its imports
// stay so traffic resumes the moment the peer is back.
func (l *Links) markFailed(now time.Time) {
	l.mu.Lock()
	var failed []string
	for _, lk := range l.links {
		if lk.state == spec.LinkActive && now.Sub(lk.lastSeen) > l.opts.Timeout {
			lk.state = spec.LinkFailed
			failed = append(failed, lk.cluster)
		}
	}
	l.mu.Unlock()
	for _, c := range failed {
		l.log.Warn("federation: link failed: peer silent past the heartbeat timeout", "peer", c, "timeout", l.opts.Timeout)
	}
	if len(failed) > 0 {
		l.changed()
	}
}
