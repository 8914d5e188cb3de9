package ca

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// minMaintainWait spaces Run's passes even when Maintain says it is due
// again at once (two steps due moments apart), so a state that keeps
// asking for another pass cannot spin. Failures wait a minute anyway.
const minMaintainWait = 100 * time.Millisecond

// DefaultFollowInterval is how often Follow reads the store when the caller
// does not say: a Get of one Secret per replica, cheap next to the CA's
// lifetime, and the bound on how long a follower serves an old bundle.
const DefaultFollowInterval = 2 * time.Second

// Stats counts what this CA instance did, for logs, metrics and tests.
type Stats struct {
	Prepared  uint64 // successors this instance prepared and saved
	Activated uint64 // successors this instance activated and saved
	Reloaded  uint64 // times it adopted a different state from the store
}

// Stats returns the counters so far.
func (c *CA) Stats() Stats {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.stats
}

// Reload reads the store and, if it holds another state than this instance
// serves (another replica prepared, activated or retired an authority),
// adopts it and wakes Updated's watchers, so Workload API streams push the
// new bundle and SVID caches reissue from the new signing authority. It
// reports whether anything changed. A state that cannot be used (wrong trust
// domain, broken keys, gone) is an error and this instance keeps serving
// what it has.
//
// The lock is held across the read so that a Maintain of this same instance
// cannot save a newer state between the read and the adoption, which Reload
// would then roll back.
func (c *CA) Reload(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.opts.Store.Load(ctx)
	if errors.Is(err, ErrNoState) {
		return false, fmt.Errorf("CA %s: reload: the store no longer holds a CA: %w", c.opts.TrustDomain, err)
	}
	if err != nil {
		return false, fmt.Errorf("CA %s: reload: %w", c.opts.TrustDomain, err)
	}
	auths, err := parseState(st, c.opts.TrustDomain)
	if err != nil {
		return false, fmt.Errorf("CA %s: reload: %w", c.opts.TrustDomain, err)
	}
	c.stored = stateKey(st) // what a conditional save must now find
	if st.Sequence == c.seq && slices.EqualFunc(auths, c.auths, sameAuthority) {
		return false, nil
	}
	if st.Sequence < c.seq {
		// Only the lease holder writes, and it always bumps; a lower number
		// is an older state, say a restored backup. Serve it all the same (it
		// is what every other replica now reads) but say so.
		c.log.Warn("CA store holds an older bundle sequence than served", "stored", st.Sequence, "served", c.seq)
	}
	c.auths, c.seq = auths, st.Sequence
	c.stats.Reloaded++
	close(c.updated)
	c.updated = make(chan struct{})
	c.log.Info("reloaded CA from store", "sequence", c.seq, "active", c.activeLocked().inter.SerialNumber.Text(16), "authorities", len(c.auths))
	return true, nil
}

// sameAuthority compares what can change in a stored authority: which keys
// it holds (the intermediate's serial names them) and its rotation state.
func sameAuthority(a, b *authority) bool {
	return a.inter.SerialNumber.Cmp(b.inter.SerialNumber) == 0 && a.root.SerialNumber.Cmp(b.root.SerialNumber) == 0 &&
		a.prepared == b.prepared && a.retireAt.Equal(b.retireAt)
}

// Follow keeps this instance in step with the store until ctx ends: it
// reloads every interval (<= 0: DefaultFollowInterval). It is what a replica
// that does not rotate runs, so it serves the bundle the rotating replica
// saved; errors are logged and retried at the next tick. The caller owns the
// goroutine.
func (c *CA) Follow(ctx context.Context, every time.Duration) error {
	every = cmp.Or(max(every, 0), DefaultFollowInterval)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every*5)
		_, err := c.Reload(rctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Error("CA follow: reload failed; serving the state held", "err", err)
		}
	}
}

// Lease names the coordination.k8s.io Lease that elects the one replica
// allowed to rotate a shared CA (RunShared).
type Lease struct {
	Client    typedcoordinationv1.LeasesGetter
	Namespace string
	Name      string
	// Identity of this replica in the Lease; "" = the host name (the pod
	// name in a cluster).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go's
	// leaderelection; 0 = 15s, 10s, 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// OnLeading, if set, is told when this replica starts (true) and stops
	// (false) rotating.
	OnLeading func(bool)
}

// RunShared runs one replica of a CA whose store other replicas share (the
// SecretStore): every replica follows the store (Follow, every `follow`),
// and the one holding the Lease also rotates it (Run), after first reading
// the store, since the previous leader may have rotated just before it
// stopped. Leadership is only an optimisation of who writes: two replicas
// that both believe they lead still cannot overwrite each other, because the
// store refuses a write at a stale version (ErrConflict) and Run then
// reloads. It returns when ctx ends; the caller owns the goroutine, and the
// ones it starts are gone when it returns.
func (c *CA) RunShared(ctx context.Context, l Lease, follow time.Duration) error {
	if l.Client == nil || l.Namespace == "" || l.Name == "" {
		return fmt.Errorf("CA %s: shared rotation needs a Lease client, namespace and name", c.opts.TrustDomain)
	}
	if l.Identity == "" {
		l.Identity, _ = os.Hostname()
	}
	followDone := make(chan struct{})
	go func() {
		defer close(followDone)
		_ = c.Follow(ctx, follow)
	}()
	defer func() { <-followDone }()
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client:     l.Client,
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.Identity},
	}
	lease := l.Namespace + "/" + l.Name
	// Terms run on a goroutine owned here: leaderelection starts
	// OnStartedLeading in a goroutine of its own that nobody waits for, so
	// the callback hands the term over, and RunShared returns only after the
	// last term's Run has.
	terms := make(chan context.Context)
	termsDone := make(chan struct{})
	go func() {
		defer close(termsDone)
		for {
			select {
			case <-ctx.Done():
				return
			case term := <-terms:
				c.lead(term, l, lease)
			}
		}
	}()
	defer func() { <-termsDone }()
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Name:            l.Name,
			Lock:            lock,
			LeaseDuration:   cmp.Or(l.LeaseDuration, 15*time.Second),
			RenewDeadline:   cmp.Or(l.RenewDeadline, 10*time.Second),
			RetryPeriod:     cmp.Or(l.RetryPeriod, 2*time.Second),
			ReleaseOnCancel: true,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(term context.Context) {
					select {
					case terms <- term:
					case <-ctx.Done():
					}
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return fmt.Errorf("CA %s: Lease %s: %w", c.opts.TrustDomain, lease, err)
		}
		le.Run(ctx) // returns when a term is lost or ctx ends; stand again
	}
	return nil
}

// lead is one term as the rotating replica.
func (c *CA) lead(term context.Context, l Lease, lease string) {
	c.log.Info("CA rotation: leading", "lease", lease, "identity", l.Identity)
	if l.OnLeading != nil {
		l.OnLeading(true)
		defer l.OnLeading(false)
	}
	if _, err := c.Reload(term); err != nil && term.Err() == nil {
		c.log.Error("CA rotation: reload before leading failed", "err", err)
	}
	_ = c.Run(term)
	c.log.Info("CA rotation: no longer leading", "lease", lease, "identity", l.Identity)
}
