package kube

import (
	"cmp"
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election configures leader election with a coordination.k8s.io Lease.
// Every replica serves config; only the lease holder writes status and
// Events, so that two replicas never fight over the same condition.
type Election struct {
	// Namespace and LeaseName of the Lease; an empty LeaseName disables
	// election (the Watcher then never writes to the cluster).
	Namespace string
	LeaseName string
	// Identity of this replica in the Lease; "" means the hostname (the pod
	// name in a cluster).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod as in client-go's
	// leaderelection; 0 means 15s, 10s and 2s.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// KeepLeaseOnStop leaves the Lease held when Run ends, so a successor
	// waits for it to expire (what a crash looks like). By default the Lease
	// is released and a successor takes over at its next retry.
	KeepLeaseOnStop bool
}

// campaign runs leader election until ctx ends, standing again after every
// lost term. Each won term's context goes to the status writer, which writes
// until that context ends.
func (w *Watcher) campaign(ctx context.Context) {
	e := w.opts.Election
	e.Namespace = cmp.Or(e.Namespace, "default")
	e.Identity = cmp.Or(e.Identity, hostname())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.LeaseName},
		Client:     w.kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
	}
	terms := make(chan context.Context)
	done := make(chan struct{})
	// The term goroutine is owned here, not by leaderelection (which starts
	// OnStartedLeading in a goroutine nobody waits for), so that Run returns
	// only after the last status write.
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case term := <-terms:
				w.status.lead(term)
				w.leader.Store(false)
			}
		}
	}()
	defer func() { <-done }()
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Name:            e.LeaseName,
			Lock:            lock,
			LeaseDuration:   cmp.Or(e.LeaseDuration, 15*time.Second),
			RenewDeadline:   cmp.Or(e.RenewDeadline, 10*time.Second),
			RetryPeriod:     cmp.Or(e.RetryPeriod, 2*time.Second),
			ReleaseOnCancel: !e.KeepLeaseOnStop,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(term context.Context) {
					// leaderelection cancels term before it calls
					// OnStoppedLeading, so a late start sees it done.
					if term.Err() != nil {
						return
					}
					w.leader.Store(true)
					w.log.Info("became leader", "lease", e.Namespace+"/"+e.LeaseName, "identity", e.Identity)
					select {
					case terms <- term:
					case <-term.Done():
						w.leader.Store(false)
					}
				},
				OnStoppedLeading: func() {
					if w.leader.Swap(false) {
						w.log.Info("stopped leading", "lease", e.Namespace+"/"+e.LeaseName, "identity", e.Identity)
					}
				},
			},
		})
		if err != nil {
			w.log.Error("leader election misconfigured; status will not be written", "err", err)
			return
		}
		le.Run(ctx)
	}
}
