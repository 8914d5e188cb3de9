package federation

import (
	"context"
	"crypto/hmac"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	fedv1 "github.com/causeway-mesh/causeway/api/federation/v1"
)

// notLinked starts the message a dialler gets when this side has no link
// to it: it was revoked here while the dialler was away (or this control
// plane restarted), so the dialler drops the link too.
const notLinked = "not linked"

// Generate issues a one-time peering token valid for ttl. Serve must have
// started (or Options.Advertise be set) so the token names an address.
func (l *Links) Generate(ttl time.Duration) (Token, error) {
	if ttl <= 0 {
		return Token{}, fmt.Errorf("peering token: ttl %s must be positive", ttl)
	}
	l.mu.Lock()
	addrs := l.advertise
	if len(addrs) == 0 && l.listener != nil {
		addrs = []string{l.listener.String()}
	}
	l.mu.Unlock()
	if len(addrs) == 0 {
		return Token{}, errors.New("peering token: no federation address: serve the federation stream first or set an advertised address")
	}
	id, secret, err := newTokenID()
	if err != nil {
		return Token{}, fmt.Errorf("peering token: %w", err)
	}
	t := Token{Cluster: l.opts.Cluster, TrustDomain: l.opts.TrustDomain.Name(), Addrs: addrs,
		Bundle: string(encodeRoots(l.opts.Bundle.Bundle().X509Authorities())), ID: id, Secret: secret,
		Expires: time.Now().Add(ttl).Truncate(time.Second).Add(time.Second)}
	l.mu.Lock()
	now := time.Now()
	for k, v := range l.tokens {
		// Used tokens are kept until they expire, to answer "already used".
		if now.After(v.expires) {
			delete(l.tokens, k)
		}
	}
	l.tokens[id] = &issued{secret: secret, expires: t.Expires}
	l.mu.Unlock()
	return t, nil
}

// Serve accepts peers on lis until Close. The TLS handshake asks for any
// client certificate: a peer's is verified after its Hello says which
// trust domain it claims, against the bundle we hold for it or, on first
// contact, the bundle its peering proof vouches for.
func (l *Links) Serve(lis net.Listener) error {
	cfg := tlsconfig.TLSServerConfig(l.opts.SVID)
	cfg.ClientAuth = tls.RequireAnyClientCert
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)))
	fedv1.RegisterFederationServiceServer(srv, &service{l: l})
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return nil
	}
	l.grpc = srv
	l.listener = lis.Addr()
	l.mu.Unlock()
	l.log.Info("federation: serving", "addr", lis.Addr().String())
	return srv.Serve(lis)
}

type service struct {
	fedv1.UnimplementedFederationServiceServer
	l *Links
}

// Peer implements the listening side: authenticate the Hello, answer with
// ours, then run the session until it ends.
func (s *service) Peer(st grpc.BidiStreamingServer[fedv1.PeerMessage, fedv1.PeerMessage]) error {
	l := s.l
	ctx := st.Context()
	certs, err := peerCerts(ctx)
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	first, err := recvHello(ctx, st)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	lk, err := l.admit(first, certs)
	if err != nil {
		l.log.Warn("federation: peer refused", "peer", first.Cluster, "trustDomain", first.TrustDomain, "err", err)
		return status.Error(codes.PermissionDenied, err.Error())
	}
	if err := st.Send(l.hello(nil)); err != nil {
		return err
	}
	err = l.run(ctx, lk, st)
	l.log.Info("federation: peer stream ended", "peer", lk.cluster, "err", err)
	if errors.Is(err, errRevoked) {
		return nil
	}
	return err
}

func (l *Links) hello(p *fedv1.Peering) *fedv1.PeerMessage {
	return &fedv1.PeerMessage{Msg: &fedv1.PeerMessage_Hello{Hello: &fedv1.Hello{Cluster: l.opts.Cluster, TrustDomain: l.opts.TrustDomain.Name(), Peering: p}}}
}

func peerCerts(ctx context.Context) ([]*x509.Certificate, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, errors.New("no peer on the stream")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return nil, errors.New("peer presented no client certificate")
	}
	return ti.State.PeerCertificates, nil
}

// recvHello reads the first message, which must be a Hello, within 10s so
// a silent connection does not hold a stream open.
func recvHello(ctx context.Context, st peerStream) (*fedv1.Hello, error) {
	type res struct {
		m   *fedv1.PeerMessage
		err error
	}
	ch := make(chan res, 1)
	go func() { m, err := st.Recv(); ch <- res{m, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.m.GetHello()
		if h == nil {
			return nil, fmt.Errorf("first message is %T, want Hello", r.m.Msg)
		}
		return h, nil
	case <-time.After(10 * time.Second):
		return nil, errors.New("no Hello within 10s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// admit authenticates a dialler's Hello and returns its link, creating it
// on first contact.
func (l *Links) admit(h *fedv1.Hello, certs []*x509.Certificate) (*link, error) {
	if err := validCluster(h.Cluster); err != nil {
		return nil, fmt.Errorf("hello: cluster: %w", err)
	}
	td, err := spiffeid.TrustDomainFromString(h.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("hello: trustDomain: %w", err)
	}
	if td == l.opts.TrustDomain || h.Cluster == l.opts.Cluster {
		return nil, fmt.Errorf("hello: cluster %q (%s) is this cluster", h.Cluster, td)
	}
	if p := h.Peering; p != nil {
		return l.admitPeering(h, td, p, certs)
	}
	l.mu.Lock()
	lk := l.links[h.Cluster]
	l.mu.Unlock()
	if lk == nil || lk.td != td {
		return nil, fmt.Errorf("%s: cluster %q (%s) has no link with cluster %q; apply a new peering token", notLinked, h.Cluster, td, l.opts.Cluster)
	}
	id, err := verifyIn(certs, td, l.opts.Federated)
	if err != nil {
		return nil, err
	}
	if id != lk.peerID {
		// Any workload of the peer's trust domain chains to its bundle;
		// only the control plane that peered may speak for the cluster.
		return nil, fmt.Errorf("client certificate: %s is not %s, the control plane cluster %q peered with", id, lk.peerID, h.Cluster)
	}
	return lk, nil
}

// admitPeering checks a first contact: the token must be ours, unused and
// unexpired, the proof must be made with its secret over the certificate
// this connection presented, and that certificate must chain to the bundle
// the proof vouches for. Only then is the token spent.
func (l *Links) admitPeering(h *fedv1.Hello, td spiffeid.TrustDomain, p *fedv1.Peering, certs []*x509.Certificate) (*link, error) {
	roots, err := parseRoots(p.Bundle)
	if err != nil {
		return nil, fmt.Errorf("peering: bundle: %w", err)
	}
	// The certificate is checked first so a proof made for a bad chain
	// does not spend the token.
	peerID, err := verifyIn(certs, td, x509bundle.FromX509Authorities(td, roots))
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	tok := l.tokens[p.TokenId]
	if err := checkIssued(tok, p.TokenId, time.Now()); err != nil {
		l.mu.Unlock()
		return nil, err
	}
	want := proof(tok.secret, p.TokenId, h.Cluster, h.TrustDomain, p.Bundle, certs[0].Raw)
	if !hmac.Equal(want, p.Proof) {
		l.mu.Unlock()
		return nil, fmt.Errorf("peering token %s: proof does not match (wrong secret, or made for another certificate)", p.TokenId)
	}
	tok.usedBy, tok.usedAt = h.Cluster, time.Now()
	l.mu.Unlock()
	lk := l.addLink(h.Cluster, td, peerID, roots, nil)
	l.log.Info("federation: peered", "peer", h.Cluster, "trustDomain", td.Name(), "token", p.TokenId)
	return lk, nil
}

// verifyIn checks that certs is an X.509-SVID of td chaining to the bundle
// bundles hold for td, and returns its SPIFFE ID.
func verifyIn(certs []*x509.Certificate, td spiffeid.TrustDomain, bundles x509bundle.Source) (spiffeid.ID, error) {
	id, _, err := x509svid.Verify(certs, bundles)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("client certificate: %w", err)
	}
	if !id.MemberOf(td) {
		return spiffeid.ID{}, fmt.Errorf("client certificate: %s is not in trust domain %s", id, td)
	}
	return id, nil
}
