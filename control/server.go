package control

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/spec"
)

// Options configure a Server.
type Options struct {
	// Creds secure the gRPC listener; build them with MTLS. Nil serves
	// plaintext and trusts every node's claimed identity: INSECURE, for local
	// tests and `causeway control --insecure` on loopback only.
	Creds  credentials.TransportCredentials
	Logger *slog.Logger
	// Now is the clock for sync-state timestamps; nil means time.Now.
	Now func() time.Time
	// ForgetAfter is how long a disconnected proxy's sync state is kept for
	// the REST API; 0 means 15 minutes. Pods come and go; without a limit
	// the table would grow with every rollout.
	ForgetAfter time.Duration
}

// MTLS gives server credentials that present the control plane's SVID and
// accept only clients with an X.509-SVID from trustDomain. The node's
// identity is then the client certificate's SPIFFE ID (see StreamConfig).
func MTLS(svid x509svid.Source, bundle x509bundle.Source, trustDomain spiffeid.TrustDomain) credentials.TransportCredentials {
	return grpccredentials.MTLSServerCredentials(svid, bundle, tlsconfig.AuthorizeMemberOf(trustDomain))
}

// Server is the control plane's state and its config stream. Publish feeds
// it snapshots; StreamConfig serves them; Proxies, Snapshot and Diagnostics
// are read by the REST API.
type Server struct {
	configv1.UnimplementedConfigServiceServer

	log    *slog.Logger
	now    func() time.Time
	forget time.Duration
	creds  credentials.TransportCredentials
	grpc   *grpc.Server
	health *health.Server
	nonce  atomic.Uint64
	stopCh chan struct{} // closed by Stop: every stream handler returns
	stop   sync.Once

	mu          sync.Mutex
	snap        *spec.Snapshot   // last good snapshot; nil until the first
	diags       spec.Diagnostics // of the last update, accepted or not
	rejected    bool             // the last update was refused
	updatedAt   time.Time
	streams     map[*stream]struct{}
	proxies     map[string]*SyncState // by node ID, kept after disconnect
	nextGen     uint64                // distinguishes streams of one node ID
	subscribers []chan struct{}
}

// New makes a server. Call Serve to accept proxies.
func New(opts Options) *Server {
	s := &Server{
		log:     opts.Logger,
		now:     opts.Now,
		forget:  opts.ForgetAfter,
		creds:   opts.Creds,
		stopCh:  make(chan struct{}),
		streams: map[*stream]struct{}{},
		proxies: map[string]*SyncState{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.forget <= 0 {
		s.forget = 15 * time.Minute
	}
	gopts := []grpc.ServerOption{
		// Proxies hold one stream for hours; keepalives find dead peers
		// behind NATs and half-open TCP without waiting for a write.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if s.creds != nil {
		gopts = append(gopts, grpc.Creds(s.creds))
	}
	s.grpc = grpc.NewServer(gopts...)
	configv1.RegisterConfigServiceServer(s.grpc, s)
	// The standard gRPC health service, so load balancers and probes can
	// tell a draining control plane from a serving one.
	s.health = health.NewServer()
	s.health.SetServingStatus(configv1.ConfigService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return s
}

// Serve accepts proxies on lis until Stop. It returns nil after Stop.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop ends every stream (proxies keep their config and reconnect
// elsewhere or later), then stops the gRPC server, waiting for handlers to
// return until ctx ends.
func (s *Server) Stop(ctx context.Context) {
	s.stop.Do(func() {
		s.health.Shutdown() // every service NOT_SERVING before streams end
		close(s.stopCh)
	})
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// Publish offers the result of loading the inputs. A snapshot whose
// diagnostics hold an error never replaces the last good one (DESIGN.md §2):
// the diagnostics are kept for the REST API and traffic keeps flowing on
// what proxies have. It reports whether the snapshot was accepted.
func (s *Server) Publish(snap *spec.Snapshot, diags spec.Diagnostics) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.diags = slices.Clone(diags)
	s.updatedAt = s.now()
	defer s.notifyLocked()
	if snap == nil || diags.HasErrors() {
		s.rejected = true
		s.log.Warn("control: inputs refused; keeping the last good snapshot",
			"errors", len(diags.Errors()), "first", firstError(diags), "serving", s.versionLocked())
		return false
	}
	s.rejected = false
	if s.snap != nil && s.snap.Version == snap.Version {
		return true
	}
	s.snap = snap
	s.log.Info("control: snapshot published", "version", snap.Version, "warnings", len(diags), "streams", len(s.streams))
	for st := range s.streams {
		st.offer(snap)
	}
	return true
}

func firstError(ds spec.Diagnostics) string {
	if errs := ds.Errors(); len(errs) > 0 {
		return errs[0].String()
	}
	return ""
}

func (s *Server) versionLocked() string {
	if s.snap == nil {
		return ""
	}
	return s.snap.Version
}

// Snapshot returns the last good snapshot, or nil before the first.
func (s *Server) Snapshot() *spec.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// Status is the outcome of the last update.
type Status struct {
	// Version is the snapshot being served.
	Version string `json:"version"`
	// Rejected is true when the last update had errors and was not applied.
	Rejected    bool             `json:"rejected"`
	UpdatedAt   time.Time        `json:"updatedAt,omitzero"`
	Diagnostics spec.Diagnostics `json:"diagnostics"`
}

// Status reports the served version and the last update's diagnostics.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Status{Version: s.versionLocked(), Rejected: s.rejected, UpdatedAt: s.updatedAt,
		Diagnostics: cmpOrEmpty(slices.Clone(s.diags))}
}

func cmpOrEmpty(ds spec.Diagnostics) spec.Diagnostics {
	if ds == nil {
		return spec.Diagnostics{}
	}
	return ds
}

// Proxies returns the sync state of every node seen since start, sorted by
// node ID; connected or not.
func (s *Server) Proxies() []SyncState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SyncState, 0, len(s.proxies))
	for _, id := range slices.Sorted(maps.Keys(s.proxies)) {
		out = append(out, s.proxies[id].clone())
	}
	return out
}

// Proxy returns one node's sync state.
func (s *Server) Proxy(nodeID string) (SyncState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.proxies[nodeID]
	if !ok {
		return SyncState{}, false
	}
	return p.clone(), true
}

// Changed returns a channel that is closed at the next change of snapshot,
// diagnostics or any sync state, so tests and watchers need not poll.
func (s *Server) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.subscribers = append(s.subscribers, ch)
	return ch
}

// pruneLocked forgets proxies disconnected for longer than ForgetAfter. It
// runs when a stream ends, which is when entries become prunable.
func (s *Server) pruneLocked() {
	cut := s.now().Add(-s.forget)
	for id, p := range s.proxies {
		if !p.Connected && p.DisconnectedAt.Before(cut) {
			delete(s.proxies, id)
		}
	}
}

func (s *Server) notifyLocked() {
	for _, ch := range s.subscribers {
		close(ch)
	}
	s.subscribers = nil
}

// updateProxy applies f to the node's sync state if gen still owns it: a
// node that reconnected has a newer stream, and the old one must not
// overwrite what the new one reports.
func (s *Server) updateProxy(id string, gen uint64, f func(*SyncState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.proxies[id]
	if !ok || p.gen != gen {
		return
	}
	f(p)
	s.notifyLocked()
}

// newNonce is unique per response for the life of the server process;
// proxies only echo it, so it needs no other meaning.
func (s *Server) newNonce() string {
	return strconv.FormatUint(s.nonce.Add(1), 10)
}
