package smi

import (
	"fmt"
	"strings"

	splitv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha1"
	splitv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha2"
	splitv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha3"
	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/causeway-mesh/causeway/spec"
)

// maxWeight bounds a backend weight (in whole units) so that Build can add
// the weights of a split in thousandths without overflow.
const maxWeight = 1_000_000_000

// backendIn is one SMI backend before translation; weight is in thousandths.
type backendIn struct {
	service string
	weight  int64
}

func splitV1alpha1(d *doc) {
	var ts splitv1alpha1.TrafficSplit
	if !d.decode(&ts) {
		return
	}
	backends := make([]backendIn, len(ts.Spec.Backends))
	for i, be := range ts.Spec.Backends {
		backends[i] = backendIn{service: be.Service, weight: d.quantityWeight(fmt.Sprintf("spec.backends[%d].weight", i), be.Weight)}
	}
	d.split(ts.Spec.Service, backends, nil)
}

func splitV1alpha2(d *doc) {
	var ts splitv1alpha2.TrafficSplit
	if !d.decode(&ts) {
		return
	}
	backends := make([]backendIn, len(ts.Spec.Backends))
	for i, be := range ts.Spec.Backends {
		backends[i] = backendIn{service: be.Service, weight: d.intWeight(i, be.Weight)}
	}
	d.split(ts.Spec.Service, backends, nil)
}

func splitV1alpha3(d *doc) {
	var ts splitv1alpha3.TrafficSplit
	if !d.decode(&ts) {
		return
	}
	backends := make([]backendIn, len(ts.Spec.Backends))
	for i, be := range ts.Spec.Backends {
		backends[i] = backendIn{service: be.Service, weight: d.intWeight(i, be.Weight)}
	}
	d.split(ts.Spec.Service, backends, ts.Spec.Matches)
}

func splitV1alpha4(d *doc) {
	// v1alpha4 only relaxed the CRD; the shape is v1alpha3's.
	var ts splitv1alpha4.TrafficSplit
	if !d.decode(&ts) {
		return
	}
	backends := make([]backendIn, len(ts.Spec.Backends))
	for i, be := range ts.Spec.Backends {
		backends[i] = backendIn{service: be.Service, weight: d.intWeight(i, be.Weight)}
	}
	d.split(ts.Spec.Service, backends, ts.Spec.Matches)
}

// split builds the canonical Split. Backends keep their SMI order so that
// Build's diagnostics ("spec.backends[1]") point at the right entry; checks
// of weights, missing services, self-reference and nesting are Build's.
func (d *doc) split(service string, backends []backendIn, matches []corev1.TypedLocalObjectReference) {
	sp := spec.Split{Key: d.key(d.o.Name), Origin: d.origin()}
	sp.Root = d.serviceKey("spec.service", service)
	for i, be := range backends {
		sp.Backends = append(sp.Backends, spec.Backend{
			Service: d.serviceKey(fmt.Sprintf("spec.backends[%d].service", i), be.service),
			Weight:  be.weight,
		})
	}
	for i, m := range matches {
		f := fmt.Sprintf("spec.matches[%d]", i)
		// The CRD allows only HTTPRouteGroup here (in v1alpha4 too): a split
		// chooses among HTTP requests; TCP has nothing to match on.
		if m.Kind != "HTTPRouteGroup" {
			d.errorf(f+".kind", "kind %q cannot be matched by a TrafficSplit (want HTTPRouteGroup)", m.Kind)
			continue
		}
		if m.APIGroup != nil && *m.APIGroup != "" && *m.APIGroup != GroupSpecs {
			d.errorf(f+".apiGroup", "apiGroup %q: HTTPRouteGroup is in %s", *m.APIGroup, GroupSpecs)
			continue
		}
		if m.Name == "" {
			d.errorf(f+".name", "required")
			continue
		}
		sp.Matches = append(sp.Matches, spec.RouteRef{Kind: spec.RouteHTTP, Key: d.key(m.Name)})
	}
	if d.failed {
		return
	}
	d.t.in.Splits = append(d.t.in.Splits, sp)
}

// serviceKey reads a service named by a TrafficSplit. The spec calls
// spec.service "the FQDN that applications will use", so besides a plain
// name it accepts name.namespace[.svc[.cluster-domain]].
func (d *doc) serviceKey(field, s string) spec.Key {
	if s == "" {
		d.errorf(field, "required")
		return spec.Key{}
	}
	parts := strings.Split(s, ".")
	k := spec.Key{Namespace: d.o.Namespace, Name: parts[0]}
	if len(parts) >= 2 {
		k.Namespace = parts[1]
	}
	if len(parts) >= 3 && parts[2] != "svc" {
		d.errorf(field, "%q is not a service name (want name, name.namespace or name.namespace.svc[.cluster-domain])", s)
		return spec.Key{}
	}
	if errs := validation.IsDNS1035Label(k.Name); len(errs) > 0 {
		d.errorf(field, "service name %q: %s", k.Name, strings.Join(errs, "; "))
		return spec.Key{}
	}
	if k.Namespace == d.o.Namespace {
		// The object's own namespace is the reader's to check, not ours.
		return k
	}
	if errs := validation.IsDNS1123Label(k.Namespace); len(errs) > 0 {
		d.errorf(field, "namespace %q: %s", k.Namespace, strings.Join(errs, "; "))
		return spec.Key{}
	}
	d.warnf(field, "service %s is in another namespace than the TrafficSplit (%s); SMI expects both in one namespace", k, d.o.Namespace)
	return k
}

// quantityWeight reads a v1alpha1 weight, a resource.Quantity where 1 =
// 1000m, into thousandths. A negative weight is passed on for Build to report.
func (d *doc) quantityWeight(field string, q *resource.Quantity) int64 {
	if q == nil {
		d.errorf(field, "required")
		return 0
	}
	limit := resource.NewQuantity(maxWeight, resource.DecimalSI)
	abs := q.DeepCopy()
	abs.Neg()
	if q.Cmp(*limit) > 0 || abs.Cmp(*limit) > 0 {
		d.errorf(field, "weight %s is too large (at most %d)", q, maxWeight)
		return 0
	}
	m := q.MilliValue()
	if resource.NewMilliQuantity(m, q.Format).Cmp(*q) != 0 {
		d.warnf(field, "weight %s is finer than thousandths; read as %s", q, spec.FormatWeight(m))
	}
	return m
}

// intWeight reads a v1alpha2+ integer weight into thousandths.
func (d *doc) intWeight(i, w int) int64 {
	field := fmt.Sprintf("spec.backends[%d].weight", i)
	// The CRD requires weight; without this check a typo ("wieght") would
	// silently read as 0.
	if list, ok := lookup(d.tree, "spec", "backends"); ok {
		if l, ok := list.([]any); ok && i < len(l) {
			if be, ok := l[i].(map[string]any); ok {
				if _, has := be["weight"]; !has {
					d.errorf(field, "required")
					return 0
				}
			}
		}
	}
	if w > maxWeight || w < -maxWeight {
		d.errorf(field, "weight %d is too large (at most %d)", w, maxWeight)
		return 0
	}
	return int64(w) * 1000
}
