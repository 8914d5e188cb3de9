package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/causeway-mesh/causeway/spec"
)

// ConditionAccepted is the condition Causeway writes on every SMI object it
// reads: True when the object translated cleanly (reason Accepted, or
// AcceptedWithWarnings), False with reason Invalid and a message naming each
// field when it did not.
const ConditionAccepted = "Accepted"

// Condition reasons.
const (
	ReasonAccepted             = "Accepted"
	ReasonAcceptedWithWarnings = "AcceptedWithWarnings"
	ReasonInvalid              = "Invalid"
)

// maxMessage bounds a condition message; the full list is in the control
// plane's diagnostics.
const maxMessage = 1024

// statusKey names one object whose condition may need writing.
type statusKey struct{ kind, namespace, name string }

// verdict is the Accepted condition an object should carry.
type verdict struct {
	status  metav1.ConditionStatus
	reason  string
	message string
}

// statusObject is one cached object of a kind with status conditions.
type statusObject struct {
	res Resource
	obj *unstructured.Unstructured
}

// statusWriter turns each translation's diagnostics into Accepted
// conditions and Events. observe runs on the sync goroutine and only records
// and enqueues; lead runs on the term goroutine while this replica leads and
// does the writing, with rate-limited retries.
type statusWriter struct {
	w     *Watcher
	queue workqueue.TypedRateLimitingInterface[statusKey]

	mu      sync.Mutex
	want    map[statusKey]verdict
	objects map[statusKey]statusObject
}

func newStatusWriter(w *Watcher) *statusWriter {
	return &statusWriter{
		w: w,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[statusKey](),
			workqueue.TypedRateLimitingQueueConfig[statusKey]{Name: "causeway-kube-status"}),
		want:    map[statusKey]verdict{},
		objects: map[statusKey]statusObject{},
	}
}

// statusObjects lists the cached objects of kinds with status conditions.
func (w *Watcher) statusObjects() []statusObject {
	var out []statusObject
	for _, in := range w.watching() {
		if !in.res.Status {
			continue
		}
		for _, obj := range in.informer.GetStore().List() {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				out = append(out, statusObject{res: in.res, obj: u})
			}
		}
	}
	return out
}

// observe records the verdict for every object and enqueues those whose
// current condition differs. It never blocks.
func (s *statusWriter) observe(objs []statusObject, diags spec.Diagnostics) {
	byObject := map[statusKey][]spec.Diagnostic{}
	for _, d := range diags {
		k := statusKey{d.Object.Kind, d.Object.Namespace, d.Object.Name}
		byObject[k] = append(byObject[k], d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.want = make(map[statusKey]verdict, len(objs))
	s.objects = make(map[statusKey]statusObject, len(objs))
	for _, o := range objs {
		k := statusKey{o.res.Kind, o.obj.GetNamespace(), o.obj.GetName()}
		v := judge(byObject[k])
		s.want[k] = v
		s.objects[k] = o
		if !current(o.obj, v) {
			s.queue.Add(k)
		}
	}
}

// judge turns one object's diagnostics into its verdict. The message names
// each field ("spec.backends[1].weight: must be >= 0").
func judge(ds []spec.Diagnostic) verdict {
	var errs, warns []string
	for _, d := range ds {
		line := d.Message
		if d.Field != "" {
			line = d.Field + ": " + d.Message
		}
		if d.Severity == spec.SeverityError {
			errs = append(errs, line)
		} else {
			warns = append(warns, line)
		}
	}
	switch {
	case len(errs) > 0:
		return verdict{metav1.ConditionFalse, ReasonInvalid, clip(strings.Join(errs, "; "))}
	case len(warns) > 0:
		return verdict{metav1.ConditionTrue, ReasonAcceptedWithWarnings, clip(strings.Join(warns, "; "))}
	default:
		return verdict{metav1.ConditionTrue, ReasonAccepted, "translated into the mesh model"}
	}
}

func clip(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return s[:maxMessage-3] + "..."
}

// conditions reads status.conditions of a custom object.
func conditions(u *unstructured.Unstructured) []metav1.Condition {
	raw, found, err := unstructured.NestedSlice(u.Object, "status", "conditions")
	if !found || err != nil {
		return nil
	}
	var out []metav1.Condition
	for _, item := range raw {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		var c metav1.Condition
		if runtime.DefaultUnstructuredConverter.FromUnstructured(m, &c) == nil {
			out = append(out, c)
		}
	}
	return out
}

// current reports whether u already carries verdict v for its generation.
func current(u *unstructured.Unstructured, v verdict) bool {
	c := apimeta.FindStatusCondition(conditions(u), ConditionAccepted)
	return c != nil && c.Status == v.status && c.Reason == v.reason && c.Message == v.message && c.ObservedGeneration == u.GetGeneration()
}

// lead writes conditions until term ends. Every known object is enqueued
// first: the previous leader may have stopped half-way.
func (s *statusWriter) lead(term context.Context) {
	w := s.w
	broadcaster := record.NewBroadcaster(record.WithContext(term))
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: w.kube.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "causeway-control-plane", Host: w.opts.Election.Identity})

	s.mu.Lock()
	for k, o := range s.objects {
		if !current(o.obj, s.want[k]) {
			s.queue.Add(k)
		}
	}
	s.mu.Unlock()
	// Get blocks; the zero key wakes the loop when the term ends.
	stop := context.AfterFunc(term, func() { s.queue.Add(statusKey{}) })
	defer stop()
	for {
		k, shutdown := s.queue.Get()
		if shutdown {
			return
		}
		if term.Err() != nil {
			// Leave the key for the next term.
			s.queue.Done(k)
			if k != (statusKey{}) {
				s.queue.Add(k)
			}
			return
		}
		if k == (statusKey{}) {
			s.queue.Done(k)
			continue
		}
		err := s.write(term, recorder, k)
		switch {
		case err == nil:
			s.queue.Forget(k)
		case s.queue.NumRequeues(k) < w.opts.MaxStatusRetries:
			w.log.Warn("status write failed; will retry", "object", k.kind+" "+k.namespace+"/"+k.name, "err", err)
			s.queue.AddRateLimited(k)
		default:
			w.log.Error("status write failed; giving up until the object changes", "object", k.kind+" "+k.namespace+"/"+k.name, "err", err)
			s.queue.Forget(k)
		}
		s.queue.Done(k)
	}
}

// write patches the Accepted condition of one object when it differs from
// the verdict, and records an Event when the object becomes invalid or is
// accepted again.
func (s *statusWriter) write(ctx context.Context, recorder record.EventRecorder, k statusKey) error {
	s.mu.Lock()
	v, ok := s.want[k]
	o := s.objects[k]
	s.mu.Unlock()
	if !ok || current(o.obj, v) {
		return nil
	}
	// Read the newest cached copy: a retry after a conflict must see the
	// write that caused it.
	u := o.obj
	if in := s.w.informerFor(o.res); in != nil {
		key := k.name
		if k.namespace != "" {
			key = k.namespace + "/" + k.name
		}
		if cached, exists, _ := in.GetStore().GetByKey(key); exists {
			if cu, ok := cached.(*unstructured.Unstructured); ok {
				u = cu
			}
		} else {
			return nil // deleted meanwhile
		}
	}
	if current(u, v) {
		return nil
	}
	conds := conditions(u)
	before := apimeta.FindStatusCondition(conds, ConditionAccepted)
	wasFalse := before != nil && before.Status == metav1.ConditionFalse
	apimeta.SetStatusCondition(&conds, metav1.Condition{
		Type:               ConditionAccepted,
		Status:             v.status,
		Reason:             v.reason,
		Message:            v.message,
		ObservedGeneration: u.GetGeneration(),
	})
	// The resourceVersion makes the merge patch conditional, so a condition
	// another writer added in between is not overwritten: the conflict is
	// retried against the newer object.
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": u.GetResourceVersion()},
		"status":   map[string]any{"conditions": conds},
	})
	if err != nil {
		return err
	}
	ri := s.w.dyn.Resource(o.res.GVR)
	var client interface {
		Patch(context.Context, string, types.PatchType, []byte, metav1.PatchOptions, ...string) (*unstructured.Unstructured, error)
	} = ri
	if o.res.Namespaced {
		client = ri.Namespace(k.namespace)
	}
	if _, err := client.Patch(ctx, k.name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "causeway"}, "status"); err != nil {
		return fmt.Errorf("patch %s %s/%s status: %w", k.kind, k.namespace, k.name, err)
	}
	switch {
	case v.status == metav1.ConditionFalse:
		recorder.Event(u, corev1.EventTypeWarning, ReasonInvalid, v.message)
	case wasFalse:
		recorder.Event(u, corev1.EventTypeNormal, ReasonAccepted, v.message)
	}
	return nil
}

func (w *Watcher) informerFor(r Resource) cache.SharedIndexInformer {
	for _, in := range w.watching() {
		if in.res == r {
			return in.informer
		}
	}
	return nil
}
