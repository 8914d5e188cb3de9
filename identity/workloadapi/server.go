package workloadapi

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	workload "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/ca"
)

// FederatedBundles is where the server reads other trust domains' bundles
// (bundle.Set implements it). Updated returns a channel closed on the next
// change.
type FederatedBundles interface {
	Bundles() []*spiffebundle.Bundle
	Updated() <-chan struct{}
}

// Config wires a Server. CA and Attestor are required.
type Config struct {
	CA       *ca.CA
	Attestor attest.Attestor
	// Federated, if set, supplies federated_bundles and the keys
	// ValidateJWTSVID accepts for other trust domains.
	Federated FederatedBundles
	SVIDTTL   time.Duration // X.509-SVID lifetime; 0 means the CA's default
	JWTTTL    time.Duration // JWT-SVID lifetime; 0 means the CA's default
	Logger    *slog.Logger
}

// Server is a Workload API server. Create it with New, then Serve a unix
// listener (or ListenAndServe a path).
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	cfg  Config
	log  *slog.Logger
	grpc *grpc.Server

	mu    sync.Mutex
	svids map[spiffeid.ID]*ca.SVIDSource
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.CA == nil {
		return nil, errors.New("workload API: no CA")
	}
	if cfg.Attestor == nil {
		return nil, errors.New("workload API: no attestor")
	}
	if cfg.SVIDTTL > cfg.CA.Overlap() {
		return nil, fmt.Errorf("workload API: SVID TTL %s exceeds the CA's rotation overlap %s; SVIDs would outlive their root's trust", cfg.SVIDTTL, cfg.CA.Overlap())
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "workloadapi", "trustDomain", cfg.CA.TrustDomain().Name()),
		svids: map[spiffeid.ID]*ca.SVIDSource{},
	}
	s.grpc = grpc.NewServer(grpc.Creds(peerCredTransport{}))
	workload.RegisterSpiffeWorkloadAPIServer(s.grpc, s)
	return s, nil
}

// Serve answers on l (a unix listener) until Stop. Connections that are not
// unix sockets are refused during the handshake.
func (s *Server) Serve(l net.Listener) error {
	s.log.Info("serving Workload API", "addr", l.Addr().String())
	return s.grpc.Serve(l)
}

// ListenAndServe creates the socket at path, replacing a stale socket left by
// a previous run (but never a regular file), and serves on it.
func (s *Server) ListenAndServe(path string) error {
	l, err := Listen(path)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Listen makes the Workload API socket. It is world-connectable (0777, as
// SPIRE's agent socket): who gets what is decided by attestation, and a caller
// that cannot connect could not even be told PermissionDenied.
func Listen(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("workload API socket %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("workload API socket %s: removing stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("workload API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		l.Close()
		return nil, fmt.Errorf("workload API socket %s: %w", path, err)
	}
	return l, nil
}

// Stop closes the listeners and every open stream. Streams are endless, so a
// graceful stop would never finish; clients reconnect with backoff.
func (s *Server) Stop() { s.grpc.Stop() }

// source returns the shared SVID cache entry of id.
func (s *Server) source(id spiffeid.ID) (*ca.SVIDSource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if src, ok := s.svids[id]; ok {
		return src, nil
	}
	src, err := s.cfg.CA.NewSVIDSource(id, s.cfg.SVIDTTL)
	if err != nil {
		return nil, err
	}
	s.svids[id] = src
	return src, nil
}
