package federation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"

	fedv1 "github.com/causeway-mesh/causeway/api/federation/v1"
	"github.com/causeway-mesh/causeway/spec"
)

// peerStream is both ends of FederationService.Peer.
type peerStream interface {
	Send(*fedv1.PeerMessage) error
	Recv() (*fedv1.PeerMessage, error)
}

var (
	errRevoked = errors.New("link revoked")
	errTimeout = errors.New("peer silent past the heartbeat timeout")
)

// session is one running stream of a link. Only its own goroutine sends on
// the stream (gRPC streams allow one sender); others reach it through
// revoke.
type session struct {
	cancel context.CancelFunc
	revoke chan string   // 1-buffered: send Revoke with this reason, then end
	done   chan struct{} // closed when the session has ended
}

// sendRevoke asks the session to tell the peer, and waits until it has
// ended or ctx ends.
func (s *session) sendRevoke(ctx context.Context, reason string) {
	select {
	case s.revoke <- reason:
	default:
	}
	select {
	case <-s.done:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
}

// run is the body of a stream after the Hello exchange, the same on both
// sides: send our exports now and after every change, ACK or NACK the
// peer's, heartbeat, and end on revoke, timeout or a stream error. It owns
// the calling goroutine and one reader goroutine that ends with the stream.
func (l *Links) run(ctx context.Context, lk *link, st peerStream) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &session{cancel: cancel, revoke: make(chan string, 1), done: make(chan struct{})}
	defer close(s.done)

	l.mu.Lock()
	if lk.removed {
		l.mu.Unlock()
		return errRevoked
	}
	if old := lk.sess; old != nil {
		old.cancel() // a reconnect replaces a stream the peer has given up on
	}
	lk.sess = s
	lk.state = spec.LinkActive
	lk.lastSeen = time.Now()
	l.mu.Unlock()
	l.changed()
	l.log.Info("federation: link active", "peer", lk.cluster)
	defer func() {
		l.mu.Lock()
		if lk.sess == s {
			lk.sess = nil
		}
		l.mu.Unlock()
	}()

	msgs := make(chan *fedv1.PeerMessage)
	errc := make(chan error, 1)
	go func() {
		for {
			m, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()

	var nonce uint64
	sent := ""
	bundleCh := l.opts.Bundle.Updated()
	sendExports := func() (<-chan struct{}, error) {
		m, ch := l.localExports()
		if m.Version == sent {
			return ch, nil
		}
		nonce++
		m.Nonce = strconv.FormatUint(nonce, 10)
		sent = m.Version
		return ch, st.Send(&fedv1.PeerMessage{Msg: &fedv1.PeerMessage_Exports{Exports: m}})
	}
	localCh, err := sendExports()
	if err != nil {
		return err
	}
	hb := time.NewTicker(l.opts.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case reason := <-s.revoke:
			_ = st.Send(&fedv1.PeerMessage{Msg: &fedv1.PeerMessage_Revoke{Revoke: &fedv1.Revoke{Reason: reason}}})
			// Wait for the peer to end the stream: cancelling ours at once
			// could reset it before the Revoke is delivered.
			select {
			case <-errc:
			case <-time.After(time.Second):
			}
			return errRevoked
		case <-localCh:
			if localCh, err = sendExports(); err != nil {
				return err
			}
		case <-bundleCh:
			bundleCh = l.opts.Bundle.Updated()
			if localCh, err = sendExports(); err != nil {
				return err
			}
		case now := <-hb.C:
			l.mu.Lock()
			silent := now.Sub(lk.lastSeen)
			l.mu.Unlock()
			if silent > l.opts.Timeout {
				return fmt.Errorf("%w (%s)", errTimeout, silent.Round(time.Millisecond))
			}
			if err := st.Send(&fedv1.PeerMessage{Msg: &fedv1.PeerMessage_Heartbeat{Heartbeat: &fedv1.Heartbeat{UnixNano: now.UnixNano()}}}); err != nil {
				return err
			}
		case m := <-msgs:
			if err := l.handle(lk, st, m); err != nil {
				return err
			}
		}
	}
}

// handle applies one message from the peer.
func (l *Links) handle(lk *link, st peerStream, m *fedv1.PeerMessage) error {
	l.mu.Lock()
	if lk.removed {
		l.mu.Unlock()
		return errRevoked
	}
	lk.lastSeen = time.Now()
	wasActive := lk.state == spec.LinkActive
	lk.state = spec.LinkActive
	l.mu.Unlock()
	if !wasActive {
		l.changed() // back from failed: endpoints may be ready again
	}
	switch msg := m.Msg.(type) {
	case *fedv1.PeerMessage_Heartbeat:
		return nil
	case *fedv1.PeerMessage_Ack:
		l.mu.Lock()
		if msg.Ack.ErrorDetail != "" {
			lk.nacked = msg.Ack.ErrorDetail
		} else {
			lk.acked, lk.nacked = msg.Ack.Version, ""
		}
		l.mu.Unlock()
		if msg.Ack.ErrorDetail != "" {
			l.log.Warn("federation: peer refused our exports", "peer", lk.cluster, "nonce", msg.Ack.Nonce, "reason", msg.Ack.ErrorDetail)
		}
		return nil
	case *fedv1.PeerMessage_Revoke:
		l.drop(lk, "revoked by the peer: "+msg.Revoke.Reason)
		return errRevoked
	case *fedv1.PeerMessage_Exports:
		ack := &fedv1.Ack{Nonce: msg.Exports.Nonce, Version: msg.Exports.Version}
		im, roots, err := acceptExports(msg.Exports, lk.td)
		if err != nil {
			ack.ErrorDetail = err.Error()
			l.log.Warn("federation: refused a peer's exports", "peer", lk.cluster, "err", err)
		} else {
			l.applyImports(lk, im, roots)
		}
		return st.Send(&fedv1.PeerMessage{Msg: &fedv1.PeerMessage_Ack{Ack: ack}})
	case *fedv1.PeerMessage_Hello:
		return errors.New("federation: Hello in the middle of a stream")
	default:
		return fmt.Errorf("federation: unknown message %T", m.Msg)
	}
}

func (l *Links) applyImports(lk *link, im *imported, rootsPEM []byte) {
	roots, _ := parseRoots(rootsPEM) // accepted above
	l.mu.Lock()
	if lk.removed {
		l.mu.Unlock()
		return
	}
	lk.imports = im
	rotated := !bytes.Equal(lk.bundlePEM, rootsPEM)
	lk.bundlePEM = rootsPEM
	var fresh bool
	for _, g := range im.gateways {
		if _, ok := l.health[g]; !ok {
			fresh = true
		}
	}
	l.mu.Unlock()
	l.opts.Federated.Put(spiffebundle.FromX509Authorities(lk.td, roots))
	if rotated {
		l.saveState() // a restart must verify the peer with its newest roots
	}
	if fresh {
		l.probeSoon()
	}
	l.changed()
}
