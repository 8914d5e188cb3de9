package federation

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/identity/bundle"
)

// DefaultFollowInterval is how often a BundleFollower reads its store when
// Run is given no interval; the same as identity/ca's CA follow.
const DefaultFollowInterval = 2 * time.Second

// BundleFollower copies the peers' bundles from a Store that a control
// plane's Links writes into a bundle.Set that a Workload API serves (the
// node agent: `causeway identity serve --federation-secret`). It never
// writes the store.
//
// It owns the trust domains it put into the set: one that leaves the State
// (unlink) leaves the set; bundles put there by others are left alone. A
// State that cannot be read or checked changes nothing: workloads keep the
// last good bundles rather than losing every peer to a transient error.
type BundleFollower struct {
	Store  Store
	Set    *bundle.Set
	Logger *slog.Logger // nil: slog.Default()

	mu      sync.Mutex
	owned   map[spiffeid.TrustDomain]bool
	lastErr string // the last error logged, so a lasting one is logged once
}

// Sync reads the store once and makes the set match it.
func (f *BundleFollower) Sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	st, err := f.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("federation: state %s: %w", f.Store, err)
	}
	links, err := decodeState(f.Store, st)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := map[spiffeid.TrustDomain]bool{}
	for _, r := range links {
		now[r.td] = true
		f.Set.Put(spiffebundle.FromX509Authorities(r.td, r.roots)) // no-op when unchanged
	}
	for td := range f.owned {
		if !now[td] {
			f.Set.Remove(td)
		}
	}
	f.owned = now
	return nil
}

// Run syncs every interval (<= 0: DefaultFollowInterval) until ctx ends,
// logging an error once when it starts and once when it clears. It returns
// ctx's error.
func (f *BundleFollower) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultFollowInterval
	}
	log := cmp.Or(f.Logger, slog.Default())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		err := f.Sync(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != f.lastErr {
			if err != nil {
				log.Error("federation: cannot follow the peers' bundles; serving the last good ones", "store", f.Store.String(), "err", err)
			} else {
				log.Info("federation: following the peers' bundles again", "store", f.Store.String())
			}
			f.lastErr = msg
		}
	}
}
