package federation

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
)

// Run probes peers' gateways and fails silent links until ctx ends. It owns
// the calling goroutine; each probe round runs one short-lived goroutine
// per gateway address.
func (l *Links) Run(ctx context.Context) error {
	probe := time.NewTicker(l.opts.ProbeInterval)
	defer probe.Stop()
	check := time.NewTicker(max(l.opts.Heartbeat/4, 10*time.Millisecond))
	defer check.Stop()
	l.probeAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.ctx.Done():
			return nil
		case now := <-check.C:
			l.markFailed(now)
		case <-probe.C:
			l.probeAll(ctx)
		case <-l.probe:
			l.probeAll(ctx)
		}
	}
}

// probeAll checks every peer gateway address once (TCP connect, then a TLS
// handshake in which the gateway must prove the peer's gateway ID), and
// records which answered; a change of health changes the imports.
func (l *Links) probeAll(ctx context.Context) {
	targets := map[string]spiffeid.ID{}
	l.mu.Lock()
	for _, lk := range l.links {
		if lk.imports == nil {
			continue
		}
		for _, g := range lk.imports.gateways {
			targets[g] = lk.imports.gatewayID
		}
	}
	l.mu.Unlock()
	results := make(map[string]bool, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for addr, id := range targets {
		wg.Go(func() {
			err := l.probeOne(ctx, addr, id)
			if err != nil {
				l.log.Debug("federation: gateway probe failed", "addr", addr, "gateway", id.String(), "err", err)
			}
			mu.Lock()
			results[addr] = err == nil
			mu.Unlock()
		})
	}
	wg.Wait()
	l.mu.Lock()
	changed := len(results) != len(l.health)
	for a, ok := range results {
		if old, seen := l.health[a]; !seen || old != ok {
			changed = true
		}
	}
	l.health = results
	l.mu.Unlock()
	if changed {
		l.changed()
	}
}

func (l *Links) probeOne(ctx context.Context, addr string, id spiffeid.ID) error {
	ctx, cancel := context.WithTimeout(ctx, l.opts.ProbeTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	// Our control plane SVID as client certificate: a gateway that knows
	// our bundle accepts it, and with TLS 1.3 the client's handshake ends
	// once the server has proved its ID, which is what is being probed.
	cfg := tlsconfig.MTLSClientConfig(l.opts.SVID, l.opts.Federated, tlsconfig.AuthorizeID(id))
	return tls.Client(raw, cfg).HandshakeContext(ctx)
}
