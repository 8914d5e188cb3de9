package kube

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

func managed(manager, apiVersion, subresource string, at int64, fields string) metav1.ManagedFieldsEntry {
	t := metav1.NewTime(time.Unix(at, 0))
	return metav1.ManagedFieldsEntry{
		Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: apiVersion,
		Subresource: subresource, Time: &t, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)},
	}
}

func TestWrittenVersion(t *testing.T) {
	t.Parallel()
	const (
		spec1  = `{"f:spec":{"f:backends":{}}}`
		labels = `{"f:metadata":{"f:labels":{"f:team":{}}}}`
		status = `{"f:status":{"f:conditions":{}}}`
	)
	cases := []struct {
		name    string
		read    string
		entries []metav1.ManagedFieldsEntry
		want    string
	}{
		{"no managedFields keeps the read version", "split.smi-spec.io/v1alpha4", nil, "split.smi-spec.io/v1alpha4"},
		{"one writer", "split.smi-spec.io/v1alpha4",
			[]metav1.ManagedFieldsEntry{managed("kubectl", "split.smi-spec.io/v1alpha1", "", 10, spec1)},
			"split.smi-spec.io/v1alpha1"},
		{"a later label-only write does not relabel", "split.smi-spec.io/v1alpha4",
			[]metav1.ManagedFieldsEntry{
				managed("kubectl", "split.smi-spec.io/v1alpha1", "", 10, spec1),
				managed("kubectl-label", "split.smi-spec.io/v1alpha4", "", 20, labels),
			}, "split.smi-spec.io/v1alpha1"},
		{"status writes are ignored", "split.smi-spec.io/v1alpha4",
			[]metav1.ManagedFieldsEntry{
				managed("kubectl", "split.smi-spec.io/v1alpha2", "", 10, spec1),
				managed("causeway", "split.smi-spec.io/v1alpha4", "status", 20, status),
			}, "split.smi-spec.io/v1alpha2"},
		{"the newest content write wins", "split.smi-spec.io/v1alpha4",
			[]metav1.ManagedFieldsEntry{
				managed("ci", "split.smi-spec.io/v1alpha3", "", 30, spec1),
				managed("kubectl", "split.smi-spec.io/v1alpha1", "", 10, spec1),
			}, "split.smi-spec.io/v1alpha3"},
		{"same second: the later entry wins", "split.smi-spec.io/v1alpha4",
			[]metav1.ManagedFieldsEntry{
				managed("a", "split.smi-spec.io/v1alpha2", "", 10, spec1),
				managed("b", "split.smi-spec.io/v1alpha3", "", 10, spec1),
			}, "split.smi-spec.io/v1alpha3"},
		{"v1alpha1 TrafficTarget keeps fields at the top level", "access.smi-spec.io/v1alpha3",
			[]metav1.ManagedFieldsEntry{managed("kubectl", "access.smi-spec.io/v1alpha1", "", 10, `{"f:destination":{},"f:specs":{}}`)},
			"access.smi-spec.io/v1alpha1"},
		{"unreadable fields are not content", "split.smi-spec.io/v1alpha4",
			[]metav1.ManagedFieldsEntry{managed("x", "split.smi-spec.io/v1alpha1", "", 10, `[1]`)},
			"split.smi-spec.io/v1alpha4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": c.read, "kind": "TrafficSplit"}}
			u.SetManagedFields(c.entries)
			if got := writtenVersion(u); got != c.want {
				t.Errorf("writtenVersion = %q, want %q", got, c.want)
			}
			got, _ := relabel(u)
			if gu := got.(*unstructured.Unstructured); gu.GetAPIVersion() != c.want || gu.GetManagedFields() != nil {
				t.Errorf("relabel: apiVersion %q managedFields %v, want %q and none", gu.GetAPIVersion(), gu.GetManagedFields(), c.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	src := spec.Source{File: SourceFile("TrafficSplit", "ns", "s")}
	obj := spec.Object{Kind: "TrafficSplit", Namespace: "ns", Name: "s"}
	var errs, warns spec.Diagnostics
	errs.Errorf(src, obj, "spec.backends[0].weight", "must be >= 0")
	errs.Warnf(src, obj, "spec.service", "service not found")
	errs.Errorf(src, obj, "", "whole-object problem")
	warns.Warnf(src, obj, "spec.service", "service not found")
	long := strings.Repeat("x", 2*maxMessage)
	var huge spec.Diagnostics
	huge.Errorf(src, obj, "spec", "%s", long)
	cases := []struct {
		name   string
		in     spec.Diagnostics
		status metav1.ConditionStatus
		reason string
		msg    string
	}{
		{"clean", nil, metav1.ConditionTrue, ReasonAccepted, "translated into the mesh model"},
		{"warnings only", warns, metav1.ConditionTrue, ReasonAcceptedWithWarnings, "spec.service: service not found"},
		{"errors name their fields, warnings left out", errs, metav1.ConditionFalse, ReasonInvalid, "spec.backends[0].weight: must be >= 0; whole-object problem"},
		{"long messages are clipped", huge, metav1.ConditionFalse, ReasonInvalid, "spec: " + long[:maxMessage-len("spec: ")-3] + "..."},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			v := judge(c.in)
			if v.status != c.status || v.reason != c.reason || v.message != c.msg {
				t.Errorf("judge = %+v, want %s %s %q", v, c.status, c.reason, c.msg)
			}
		})
	}
}

func TestCurrent(t *testing.T) {
	t.Parallel()
	v := verdict{metav1.ConditionFalse, ReasonInvalid, "spec.backends[0].weight: must be >= 0"}
	obj := func(gen int64, conds ...any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit"}}
		u.SetGeneration(gen)
		if conds != nil {
			_ = unstructured.SetNestedSlice(u.Object, conds, "status", "conditions")
		}
		return u
	}
	cond := func(status, reason, msg string, gen int64) any {
		return map[string]any{"type": ConditionAccepted, "status": status, "reason": reason, "message": msg,
			"observedGeneration": gen, "lastTransitionTime": "2026-01-01T00:00:00Z"}
	}
	cases := []struct {
		name string
		u    *unstructured.Unstructured
		want bool
	}{
		{"no status", obj(1), false},
		{"same verdict and generation", obj(2, cond("False", ReasonInvalid, v.message, 2)), true},
		{"older generation", obj(3, cond("False", ReasonInvalid, v.message, 2)), false},
		{"other message", obj(2, cond("False", ReasonInvalid, "other", 2)), false},
		{"other status", obj(2, cond("True", ReasonAccepted, v.message, 2)), false},
		{"other condition types are kept apart", obj(2, map[string]any{"type": "Ready", "status": "False", "reason": "X", "message": v.message, "lastTransitionTime": "2026-01-01T00:00:00Z"}), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if got := current(c.u, v); got != c.want {
				t.Errorf("current = %v, want %v", got, c.want)
			}
		})
	}
}

func TestSourceFile(t *testing.T) {
	t.Parallel()
	cases := []struct{ kind, ns, name, want string }{
		{"TrafficSplit", "shop", "ab", "kube://TrafficSplit/shop/ab"},
		{"MeshConfig", "", "default", "kube://MeshConfig/default"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			t.Parallel()
			if got := SourceFile(c.kind, c.ns, c.name); got != c.want {
				t.Errorf("SourceFile = %q, want %q", got, c.want)
			}
		})
	}
}

// TestToObject checks that cached objects become documents Translate reads
// as if they came from a manifest: typed objects get apiVersion and kind
// (informers leave them empty), custom objects keep their written version.
func TestToObject(t *testing.T) {
	t.Parallel()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", ResourceVersion: "7"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}},
	}
	split := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "split.smi-spec.io/v1alpha1", "kind": "TrafficSplit",
		"metadata": map[string]any{"name": "ab", "namespace": "shop"},
		"spec":     map[string]any{"service": "web", "backends": []any{map[string]any{"service": "web", "weight": "500m"}}},
	}}
	cases := []struct {
		name       string
		res        Resource
		obj        any
		apiVersion string
		rawHas     string
	}{
		{"typed Service", Services, svc, "v1", `"apiVersion":"v1"`},
		{"custom object keeps its written version", TrafficSplits, split, "split.smi-spec.io/v1alpha1", `"weight":"500m"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			o, err := toObject(c.res, c.obj)
			if err != nil {
				t.Fatal(err)
			}
			if o.APIVersion != c.apiVersion || o.Kind != c.res.Kind || o.Namespace != "shop" {
				t.Errorf("object = %s %s %s, want %s %s shop", o.APIVersion, o.Kind, o.Namespace, c.apiVersion, c.res.Kind)
			}
			if want := SourceFile(c.res.Kind, "shop", o.Name); o.Source.File != want {
				t.Errorf("source = %q, want %q", o.Source.File, want)
			}
			if !strings.Contains(string(o.Raw), c.rawHas) {
				t.Errorf("raw %s lacks %s", o.Raw, c.rawHas)
			}
		})
	}
	// The typed copy was marshalled, the cached object left alone.
	if svc.Kind != "" {
		t.Errorf("toObject changed the cached Service's kind to %q", svc.Kind)
	}
	// And the Service document translates.
	o, _ := toObject(Services, svc)
	in, diags := Translate([]adapters.Object{o}, Options{})
	if diags.HasErrors() || len(in.Services) != 1 || in.Services[0].Key.Name != "web" {
		t.Errorf("Translate of a cached Service: %d services, diagnostics %v", len(in.Services), diags)
	}
}
