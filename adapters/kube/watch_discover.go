package kube

// Kinds that appear after Run started: a CRD installed later (MCS's
// ServiceExport on a cluster that gains an MCS implementation) is watched
// without restarting the control plane.

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
)

// Kinds returns the kinds watched now, in the order they were added: what
// the apiserver served at start, then kinds discovered later.
func (w *Watcher) Kinds() []string {
	var out []string
	for _, in := range w.watching() {
		out = append(out, in.res.Kind)
	}
	return out
}

// rediscover asks discovery, every Rediscover, whether the custom kinds
// missing at start are served now, and starts watching each one that is:
// its informer is started, synced, added, and a translation follows. One
// discovery call per missing group version and period is all it costs
// while a CRD stays absent.
func (w *Watcher) rediscover(ctx context.Context) {
	tick := time.NewTicker(w.opts.Rediscover)
	defer tick.Stop()
	for len(w.missing) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		still := w.missing[:0]
		for _, r := range w.missing {
			if !w.served(r) {
				still = append(still, r)
				continue
			}
			inf, err := w.newInformer(r)
			if err != nil {
				w.log.Error("cannot watch a newly served kind", "kind", r.Kind, "err", err)
				still = append(still, r)
				continue
			}
			// Start only starts informers not yet running: this one.
			w.dynamic.Start(ctx.Done())
			if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
				return
			}
			w.informersMu.Lock()
			w.informers = append(w.informers, watched{res: r, informer: inf})
			w.informersMu.Unlock()
			w.log.Info("kind now served by the apiserver; watching it", "kind", r.Kind, "resource", r.GVR.String())
			w.changes.Add(r.Kind + "/discovered")
		}
		w.missing = still
	}
}

// served asks discovery whether the apiserver serves r now; an error is
// taken as "not yet" and retried on the next period.
func (w *Watcher) served(r Resource) bool {
	list, err := w.kube.Discovery().ServerResourcesForGroupVersion(r.GVR.GroupVersion().String())
	if err != nil {
		if !apierrors.IsNotFound(err) {
			w.log.Debug("discovery", "resource", r.GVR.String(), "err", err)
		}
		return false
	}
	for _, ar := range list.APIResources {
		if ar.Name == r.GVR.Resource {
			return true
		}
	}
	return false
}
