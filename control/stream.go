package control

import (
	"errors"
	"fmt"
	"io"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/spec"
)

// stream is one connected proxy. Publish hands it snapshots through a
// 1-buffered channel that is drained before each send (Consul's proxycfg
// pattern): the publisher never blocks on a slow proxy, and a proxy that
// fell behind gets only the newest snapshot, never a backlog.
type stream struct {
	snaps chan *spec.Snapshot
}

func (st *stream) offer(snap *spec.Snapshot) {
	for {
		select {
		case st.snaps <- snap:
			return
		default:
		}
		select {
		case <-st.snaps: // drop the stale one; the loop sends the newest
		default:
		}
	}
}

// StreamConfig serves one proxy. It owns two goroutines: this one (decides
// and sends) and a reader that forwards the proxy's requests, because
// grpc's Recv blocks and must not hold up a push.
func (s *Server) StreamConfig(ss configv1.ConfigService_StreamConfigServer) error {
	ctx := ss.Context()
	// The reader starts first so that even the wait for the node's hello
	// gives way to Stop: a peer that connects and says nothing must not
	// hold up a graceful stop.
	reqs := make(chan *configv1.StreamConfigRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := ss.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	var first *configv1.StreamConfigRequest
	select {
	case first = <-reqs:
	case err := <-recvErr:
		return err
	case <-s.stopCh:
		return status.Error(codes.Unavailable, "control plane shutting down")
	case <-ctx.Done():
		return nil
	}
	node, err := first.GetNode().ToSpec()
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "first request: %v", err)
	}
	if node.ID == "" {
		return status.Error(codes.InvalidArgument, "first request: node.id is empty")
	}
	if err := s.authenticate(ss, &node); err != nil {
		s.log.Warn("control: proxy refused", "node", node.ID, "err", err)
		return err
	}
	remote := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		remote = p.Addr.String()
	}

	st := &stream{snaps: make(chan *spec.Snapshot, 1)}
	s.mu.Lock()
	s.nextGen++
	gen := s.nextGen
	s.streams[st] = struct{}{}
	s.proxies[node.ID] = &SyncState{Node: node, AdminAddress: first.GetNode().GetAdminAddress(), Peer: remote,
		Connected: true, ConnectedSince: s.now(), LastAckedVersion: first.GetVersionInfo(), gen: gen}
	if s.snap != nil {
		st.offer(s.snap)
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("control: proxy connected", "node", node.ID, "identity", node.Identity, "peer", remote, "has", first.GetVersionInfo())
	defer func() {
		s.mu.Lock()
		delete(s.streams, st)
		if p := s.proxies[node.ID]; p != nil && p.gen == gen {
			p.Connected = false
			p.DisconnectedAt = s.now()
		}
		s.pruneLocked()
		s.notifyLocked()
		s.mu.Unlock()
		s.log.Info("control: proxy disconnected", "node", node.ID)
	}()

	// sent is the version last sent on this stream, or the one the proxy
	// says it runs: a proxy that reconnects with the current version gets no
	// push. A NACKed version is not sent again until it changes.
	sent := first.GetVersionInfo()
	var nonce string
	for {
		select {
		case <-s.stopCh:
			return status.Error(codes.Unavailable, "control plane shutting down")
		case <-ctx.Done():
			return nil
		case err := <-recvErr:
			if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
				return nil
			}
			return err
		case snap := <-st.snaps:
			cfg := spec.Compile(snap, node)
			if cfg.Version == sent {
				s.updateProxy(node.ID, gen, func(p *SyncState) { p.SnapshotVersion = snap.Version })
				continue
			}
			nonce = s.newNonce()
			resp := &configv1.StreamConfigResponse{VersionInfo: cfg.Version, Nonce: nonce, Config: configv1.FromSpec(cfg)}
			if err := ss.Send(resp); err != nil {
				return err
			}
			sent = cfg.Version
			s.updateProxy(node.ID, gen, func(p *SyncState) {
				p.SnapshotVersion = snap.Version
				p.LastSentVersion, p.LastSentNonce, p.LastSentAt = cfg.Version, nonce, s.now()
				p.Pushes++
			})
			s.log.Debug("control: config sent", "node", node.ID, "version", cfg.Version, "nonce", nonce)
		case r := <-reqs:
			// Only an answer to the latest response counts; an older nonce
			// answers a config that has since been replaced (xDS semantics).
			if r.GetResponseNonce() == "" || r.GetResponseNonce() != nonce {
				continue
			}
			if detail := r.GetErrorDetail(); detail != "" {
				s.updateProxy(node.ID, gen, func(p *SyncState) {
					p.LastNackVersion, p.LastNackReason, p.LastNackAt = sent, detail, s.now()
					p.LastAckedVersion = r.GetVersionInfo()
				})
				s.log.Warn("control: proxy refused config", "node", node.ID, "version", sent, "reason", detail)
				continue
			}
			s.updateProxy(node.ID, gen, func(p *SyncState) {
				p.LastAckedVersion, p.LastAckedAt = r.GetVersionInfo(), s.now()
			})
		}
	}
}

// authenticate binds the node to its transport identity. Over mTLS the
// peer's X.509-SVID is the truth: a node that claims no identity gets the
// SVID's, a node that claims another is refused, since it would otherwise
// receive the inbound policy (and so learn the callers) of a workload it is
// not. Without credentials (--insecure) the claim is trusted.
func (s *Server) authenticate(ss configv1.ConfigService_StreamConfigServer, node *spec.Node) error {
	if s.creds == nil {
		return nil
	}
	id, ok := grpccredentials.PeerIDFromContext(ss.Context())
	if !ok {
		return status.Errorf(codes.Unauthenticated, "node %s: no SPIFFE ID in the peer certificate", node.ID)
	}
	switch {
	case node.Identity.IsZero():
		node.Identity = id
	case node.Identity != id:
		return status.Error(codes.PermissionDenied, fmt.Sprintf("node %s: node.identity %s does not match the peer's SVID %s", node.ID, node.Identity, id))
	}
	return nil
}
