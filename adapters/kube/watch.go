package kube

// The Watcher (watch*.go) is the watching side of this package, kept apart
// from the pure translate*.go files (DESIGN.md §1).
//
// What enters: a rest.Config, the kinds to watch, and a TranslateFunc (the
// pipeline). What leaves: on Updates(), each snapshot translated without
// errors (newest wins); on the cluster, while leader, an Accepted condition
// in the status of every SMI object and an Event when one turns invalid or
// valid again.
//
// Goroutines, all started and awaited by Run: the informers (client-go's);
// the sync loop, sole consumer of the change queue, which translates and
// publishes; the campaign loop (leader election); in each won term, the
// status loop, sole consumer of the status queue; and, while a custom kind
// asked for is not served, the rediscover loop (watch_discover.go). Informer callbacks only add
// keys to a workqueue, which never blocks and folds duplicates, so a slow
// translation can never stall a watch. Status writes are retried with the
// queue's rate limiter, at most MaxStatusRetries times per change.

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// TranslateFunc turns every object the informers hold into a snapshot and its
// diagnostics (the pipeline: kube.Translate, smi.Translate, spec.Build). The
// Watcher takes it as a function so that it does not depend on the pipeline.
type TranslateFunc func(objs []adapters.Object) (*spec.Snapshot, spec.Diagnostics)

// Update is one published result: a snapshot without errors, and the
// warnings that came with it.
type Update struct {
	Snapshot    *spec.Snapshot
	Diagnostics spec.Diagnostics
}

// WatchOptions configure a Watcher.
type WatchOptions struct {
	// Config reaches the apiserver.
	Config *rest.Config
	// Kube and Dynamic, when both set, are used instead of clients built
	// from Config (unit tests pass fakes: internal/kubetest.FakeClients).
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Resources are the informers to run; nil means DefaultResources().
	Resources []Resource
	// Namespace limits the namespaced informers to one namespace; "" is all.
	Namespace string
	// Translate is called after every settled change. Required.
	Translate TranslateFunc
	// Settle is how long a change waits for more changes before the caches
	// are translated, so a burst (kubectl apply -f dir) is one translation;
	// 0 means 100ms.
	Settle time.Duration
	// Resync re-delivers every cached object at this period; 0 means never.
	Resync time.Duration
	// Reload, when set, asks for a translation whenever it fires, as a
	// changed object would: federation's import changes (Translate merges
	// the imports, see pipeline.Options.Imports).
	Reload <-chan struct{}
	// Election configures leader election; only the leader writes status
	// conditions and Events. A zero LeaseName disables election and the
	// Watcher never writes.
	Election Election
	// Rediscover is how often discovery is asked again for the custom kinds
	// the apiserver did not serve when Run started (a CRD installed later,
	// such as MCS's ServiceExport): once served, the kind is watched without
	// a restart. 0 means 30s; negative never asks again.
	Rediscover time.Duration
	// MaxStatusRetries bounds retries of one object's status write; 0 means 5.
	MaxStatusRetries int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Watcher keeps shared informers for the requested kinds and publishes a new
// snapshot after every settled change. Create it with NewWatcher, start it
// with Run.
type Watcher struct {
	opts    WatchOptions
	log     *slog.Logger
	kube    kubernetes.Interface
	dyn     dynamic.Interface
	typed   informers.SharedInformerFactory
	dynamic dynamicinformer.DynamicSharedInformerFactory

	// informers grows when a missing kind is discovered (rediscover), so it
	// is read through watching(); only setupInformers and the rediscover
	// loop append, under informersMu.
	informersMu sync.RWMutex
	informers   []watched
	// missing are the custom kinds not served when Run started; only the
	// rediscover loop touches it after setupInformers.
	missing []Resource
	// changes holds the keys informer callbacks enqueue; the sync worker
	// drains it. A workqueue never blocks the caller and folds repeated keys,
	// so the callbacks cannot stall the informers.
	changes workqueue.TypedRateLimitingInterface[string]
	updates chan Update

	status   *statusWriter
	leader   atomic.Bool
	lastDiag atomic.Pointer[spec.Diagnostics]
	// published is the Version of the last snapshot sent on updates, and
	// outcome identifies the last translation's result (outcomeKey). Only the
	// sync loop touches them.
	published string
	outcome   string
	// publish, set by Serve before Run, receives every new result.
	publish func(*spec.Snapshot, spec.Diagnostics) bool
	// translations counts calls of Translate, for tests and diagnostics.
	translations atomic.Int64
}

type watched struct {
	res      Resource
	informer cache.SharedIndexInformer
}

// NewWatcher builds the clients and informers; nothing runs until Run.
func NewWatcher(opts WatchOptions) (*Watcher, error) {
	if opts.Config == nil && (opts.Kube == nil || opts.Dynamic == nil) {
		return nil, errors.New("kube watcher: Config (or both Kube and Dynamic) is required")
	}
	if opts.Translate == nil {
		return nil, errors.New("kube watcher: Translate is required")
	}
	if opts.Resources == nil {
		opts.Resources = DefaultResources()
	}
	opts.Settle = cmp.Or(opts.Settle, 100*time.Millisecond)
	opts.MaxStatusRetries = cmp.Or(opts.MaxStatusRetries, 5)
	opts.Rediscover = cmp.Or(opts.Rediscover, 30*time.Second)
	w := &Watcher{
		opts:    opts,
		log:     cmp.Or(opts.Logger, slog.Default()).With("component", "kube-watcher"),
		updates: make(chan Update, 1),
		changes: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "causeway-kube-changes"}),
	}
	w.kube, w.dyn = opts.Kube, opts.Dynamic
	if w.kube == nil || w.dyn == nil {
		var err error
		if w.kube, err = kubernetes.NewForConfig(opts.Config); err != nil {
			return nil, fmt.Errorf("kube watcher: %w", err)
		}
		if w.dyn, err = dynamic.NewForConfig(opts.Config); err != nil {
			return nil, fmt.Errorf("kube watcher: %w", err)
		}
	}
	w.typed = informers.NewSharedInformerFactoryWithOptions(w.kube, opts.Resync, informers.WithNamespace(opts.Namespace))
	w.dynamic = dynamicinformer.NewFilteredDynamicSharedInformerFactory(w.dyn, opts.Resync, opts.Namespace, nil)
	w.status = newStatusWriter(w)
	return w, nil
}

// Updates delivers published snapshots. The channel holds one: a slow reader
// gets the newest, never a backlog.
func (w *Watcher) Updates() <-chan Update { return w.updates }

// IsLeader reports whether this Watcher holds the lease now.
func (w *Watcher) IsLeader() bool { return w.leader.Load() }

// Synced reports whether the caches have synced and been translated once;
// a control plane's readiness probe can wait for it.
func (w *Watcher) Synced() bool { return w.translations.Load() > 0 }

// Diagnostics returns the diagnostics of the latest translation, published
// or not (an invalid input is reported here and in status, never published).
func (w *Watcher) Diagnostics() spec.Diagnostics {
	if d := w.lastDiag.Load(); d != nil {
		return *d
	}
	return nil
}

// Run starts the informers (skipping kinds the apiserver does not serve,
// with a warning, and looking for custom ones again every Rediscover), waits
// for their caches, then translates after every settled change until ctx
// ends. Call it once. With election configured it also campaigns for the
// lease and, while leader, writes status conditions and Events. Run returns
// after every goroutine it started has stopped.
func (w *Watcher) Run(ctx context.Context) error {
	if err := w.setupInformers(); err != nil {
		return err
	}
	// Deferred calls run last-first: goroutines end (wg.Wait), then the
	// informers, then the queues' own timer goroutines.
	defer w.changes.ShutDown()
	defer w.status.queue.ShutDown()
	w.typed.Start(ctx.Done())
	w.dynamic.Start(ctx.Done())
	defer w.typed.Shutdown()
	defer w.dynamic.Shutdown()

	start := time.Now()
	watching := w.watching()
	syncs := make([]cache.InformerSynced, len(watching))
	for i, in := range watching {
		syncs[i] = in.informer.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		return fmt.Errorf("kube watcher: caches did not sync: %w", context.Cause(ctx))
	}
	w.log.Info("informer caches synced", "kinds", len(watching), "took", time.Since(start).Round(time.Millisecond))

	var wg sync.WaitGroup
	defer wg.Wait()
	// The first translation runs even if no object exists.
	w.changes.Add("initial")
	wg.Go(func() { w.syncLoop(ctx) })
	if w.opts.Reload != nil {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-w.opts.Reload:
					w.changes.Add("reload")
				}
			}
		})
	}
	if w.opts.Election.LeaseName != "" {
		wg.Go(func() { w.campaign(ctx) })
	}
	if len(w.missing) > 0 && w.opts.Rediscover > 0 {
		wg.Go(func() { w.rediscover(ctx) })
	}
	<-ctx.Done()
	w.changes.ShutDown()
	return nil
}

// setupInformers asks discovery which requested kinds are served and creates
// an informer, with its handlers, for each.
func (w *Watcher) setupInformers() error {
	served := map[string]bool{}
	for _, r := range w.opts.Resources {
		gv := r.GVR.GroupVersion().String()
		if _, seen := served[gv]; seen {
			continue
		}
		list, err := w.kube.Discovery().ServerResourcesForGroupVersion(gv)
		switch {
		case apierrors.IsNotFound(err):
			served[gv] = false
			continue
		case err != nil:
			return fmt.Errorf("kube watcher: discovery of %s: %w", gv, err)
		}
		served[gv] = true
		for _, ar := range list.APIResources {
			served[gv+"/"+ar.Name] = true
		}
	}
	for _, r := range w.opts.Resources {
		if !served[r.GVR.GroupVersion().String()+"/"+r.GVR.Resource] {
			w.log.Warn("kind not served by the apiserver; not watched (are the CRDs installed?)", "kind", r.Kind, "resource", r.GVR.String())
			if r.crd() {
				w.missing = append(w.missing, r)
			}
			continue
		}
		inf, err := w.newInformer(r)
		if err != nil {
			return err
		}
		w.informers = append(w.informers, watched{res: r, informer: inf})
	}
	return nil
}

// newInformer creates the informer for r, with its transform and handlers;
// the factory starts it on its next Start.
func (w *Watcher) newInformer(r Resource) (cache.SharedIndexInformer, error) {
	var inf cache.SharedIndexInformer
	if r.crd() {
		inf = w.dynamic.ForResource(r.GVR).Informer()
		if err := inf.SetTransform(relabel); err != nil {
			return nil, err
		}
	} else {
		gi, err := w.typed.ForResource(r.GVR)
		if err != nil {
			return nil, fmt.Errorf("kube watcher: %s: %w", r, err)
		}
		inf = gi.Informer()
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return nil, err
		}
	}
	kind := r.Kind
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.enqueue(kind, obj) },
		UpdateFunc: func(_, obj any) { w.enqueue(kind, obj) },
		DeleteFunc: func(obj any) { w.enqueue(kind, obj) },
	}); err != nil {
		return nil, err
	}
	return inf, nil
}

// watching returns the informers running now. The slice is only ever
// appended to, so the copy of its header stays valid.
func (w *Watcher) watching() []watched {
	w.informersMu.RLock()
	defer w.informersMu.RUnlock()
	return w.informers
}

// enqueue is every informer callback: it names the change and returns.
func (w *Watcher) enqueue(kind string, obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	w.changes.Add(kind + "/" + key)
}

// stripManagedFields drops metadata.managedFields before an object enters the
// cache: Causeway never reads them for core kinds, and they are often the
// largest part of an object.
func stripManagedFields(obj any) (any, error) {
	if m, err := apimeta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// relabel gives a custom object the apiVersion it was written in (see
// writtenVersion) before it enters the cache, then strips managedFields.
func relabel(obj any) (any, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		u.SetAPIVersion(writtenVersion(u))
		u.SetManagedFields(nil)
	}
	return obj, nil
}

// syncLoop is the one consumer of the change queue. Each round waits for the
// burst to settle, drains every queued key, then translates the caches once.
func (w *Watcher) syncLoop(ctx context.Context) {
	for {
		key, shutdown := w.changes.Get()
		if shutdown {
			return
		}
		w.changes.Done(key)
		select {
		case <-ctx.Done():
			return
		case <-time.After(w.opts.Settle):
		}
		// Only this goroutine takes from the queue, so Len > 0 means Get
		// will not block.
		for w.changes.Len() > 0 {
			k, shutdown := w.changes.Get()
			if shutdown {
				return
			}
			w.changes.Done(k)
		}
		w.translate()
	}
}

// translate lists every cache, translates, publishes a snapshot without
// errors, and hands every object's outcome to the status writer.
func (w *Watcher) translate() {
	objs := w.objects()
	snap, diags := w.opts.Translate(objs)
	w.translations.Add(1)
	w.lastDiag.Store(&diags)
	// Conditions are compared with the objects every time: someone may have
	// edited them even when the translation did not change.
	defer w.status.observe(w.statusObjects(), diags)
	// A status write or a resync translates again to the same result; that
	// is neither published nor logged twice.
	outcome := outcomeKey(snap, diags)
	if outcome == w.outcome {
		return
	}
	w.outcome = outcome
	if w.publish != nil {
		w.publish(snap, diags)
	}
	if diags.HasErrors() {
		w.log.Warn("input has errors; keeping the last good snapshot", "errors", len(diags.Errors()), "first", diags.Errors()[0].String())
		return
	}
	if snap == nil || snap.Version == w.published {
		return
	}
	w.published = snap.Version
	// Drain, then send: the one sender never blocks and the reader always
	// finds the newest snapshot.
	select {
	case <-w.updates:
	default:
	}
	w.updates <- Update{Snapshot: snap, Diagnostics: diags}
	w.log.Info("snapshot published", "version", snap.Version, "objects", len(objs), "warnings", len(diags))
}

// outcomeKey identifies a translation's result: the snapshot's content hash
// and the diagnostics.
func outcomeKey(snap *spec.Snapshot, diags spec.Diagnostics) string {
	h := sha256.New()
	if snap != nil {
		h.Write([]byte(snap.Version))
	}
	_ = json.NewEncoder(h).Encode(diags)
	return string(h.Sum(nil))
}

// Serve is Run for a caller that wants every translation, errors included:
// publish is called on the sync goroutine with each new result (a snapshot
// and its diagnostics; the snapshot must not be served when they hold an
// error), and should return quickly. control.Server.Publish fits, so
// a control.Source is one line: func (k kubeSource) Run(ctx context.Context,
// p control.Publisher) error { return k.Serve(ctx, p) }. Updates still
// works alongside.
func (w *Watcher) Serve(ctx context.Context, publish func(*spec.Snapshot, spec.Diagnostics) bool) error {
	w.publish = publish
	return w.Run(ctx)
}

// objects converts every cached object to an adapters.Object, in a stable
// order (kind, namespace, name) so that logs and diagnostics are too.
func (w *Watcher) objects() []adapters.Object {
	var out []adapters.Object
	for _, in := range w.watching() {
		for _, obj := range in.informer.GetStore().List() {
			o, err := toObject(in.res, obj)
			if err != nil {
				w.log.Error("cannot convert cached object", "kind", in.res.Kind, "err", err)
				continue
			}
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b adapters.Object) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// SourceFile names an object in diagnostics: kube://<kind>/<namespace>/<name>,
// or kube://<kind>/<name> for a cluster-scoped one.
func SourceFile(kind, namespace, name string) string {
	return "kube://" + strings.Join(slices.DeleteFunc([]string{kind, namespace, name}, func(s string) bool { return s == "" }), "/")
}

// toObject marshals a cached object to JSON, as if it had been read from a
// manifest. Typed objects from informers carry no apiVersion/kind, so both
// come from the Resource; custom objects carry the version they were written
// in.
func toObject(r Resource, obj any) (adapters.Object, error) {
	m, err := apimeta.Accessor(obj)
	if err != nil {
		return adapters.Object{}, err
	}
	o := adapters.Object{
		Kind:       r.Kind,
		APIVersion: r.GVR.GroupVersion().String(),
		Namespace:  m.GetNamespace(),
		Name:       m.GetName(),
		Source:     spec.Source{File: SourceFile(r.Kind, m.GetNamespace(), m.GetName())},
	}
	switch v := obj.(type) {
	case *unstructured.Unstructured:
		o.APIVersion = v.GetAPIVersion()
		o.Raw, err = json.Marshal(v.Object)
	case runtime.Object:
		// Marshal a copy with TypeMeta set: the cached object is shared.
		c := v.DeepCopyObject()
		if t, terr := apimeta.TypeAccessor(c); terr == nil {
			t.SetAPIVersion(o.APIVersion)
			t.SetKind(r.Kind)
		}
		o.Raw, err = json.Marshal(c)
	default:
		err = fmt.Errorf("unexpected cached type %T", obj)
	}
	return o, err
}

// hostname is the default leader-election identity.
func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "causeway"
	}
	return h
}
