package kube

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// Options tune Translate.
type Options struct {
	// TrustDomain of the workload identities; "" means "cluster.local".
	TrustDomain string
	// DefaultNamespace is used for namespaced objects whose document names
	// none (kubectl's current namespace); "" means "default".
	DefaultNamespace string
	// LeaveUndecided leaves Protocol empty on ports nothing in the Service
	// describes (no appProtocol, no telling name, not UDP) instead of
	// making them tcp, so that a caller who also sees the SMI objects can
	// decide (adapters/pipeline: http when HTTP routes target the service).
	// The fragment is then not ready for spec.Build until it has.
	LeaveUndecided bool
	// Strict makes unknown fields errors. By default they are warnings, as
	// in the SMI translator: published manifests carry stray fields, and a
	// typo in a required field still fails on the field it leaves empty.
	Strict bool
}

func (o Options) withDefaults() Options {
	o.TrustDomain = cmp.Or(o.TrustDomain, "cluster.local")
	o.DefaultNamespace = cmp.Or(o.DefaultNamespace, "default")
	return o
}

// kind is one group/kind this package reads, with the only version it
// decodes. Other versions of the same group/kind are still "handled", so that
// they are reported as unsupported rather than listed as ignored. A version
// holding a "/" is not a version of the group but the apiVersion to use
// instead: the whole group/kind is gone.
type kind struct {
	group, kind, version string
	namespaced           bool
}

var kinds = []kind{
	{"", "Namespace", "v1", false},
	{"", "Service", "v1", true},
	{"", "ServiceAccount", "v1", true},
	{"", "Endpoints", "v1", true},
	{"", "Pod", "v1", true},
	{"discovery.k8s.io", "EndpointSlice", "v1", true},
	{"apps", "Deployment", "v1", true},
	{"apps", "StatefulSet", "v1", true},
	{"apps", "DaemonSet", "v1", true},
	{"apps", "ReplicaSet", "v1", true},
	{GroupMCS, "ServiceExport", "v1alpha1", true},
	// Removed from Kubernetes long ago; read only to say what to use.
	{"extensions", "Deployment", "apps/v1", true},
	{"extensions", "DaemonSet", "apps/v1", true},
	{"extensions", "ReplicaSet", "apps/v1", true},
}

func lookup(o *adapters.Object) (kind, bool) {
	g := o.Group()
	for _, k := range kinds {
		if k.group == g && k.kind == o.Kind {
			return k, true
		}
	}
	return kind{}, false
}

// Handles reports whether Translate reads o.
func Handles(o *adapters.Object) bool {
	_, ok := lookup(o)
	return ok
}

// Translate turns the core Kubernetes objects among objs into a spec.Input
// fragment. Objects Handles rejects are skipped. A bad object yields
// diagnostics and is left out; the rest is still translated.
func Translate(objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics) {
	t := translator{opts: opts.withDefaults()}
	t.index(objs)
	t.in.TrustDomain = t.opts.TrustDomain
	for i := range t.services {
		if svc, ok := t.service(&t.services[i]); ok {
			t.in.Services = append(t.in.Services, svc)
		}
	}
	t.orphanEndpoints()
	have := map[nsName]bool{}
	for _, s := range t.services {
		have[nsName{s.obj.Namespace, s.obj.Name}] = true
	}
	t.orphanExports(have)
	return t.in, t.diags
}

type translator struct {
	opts  Options
	in    spec.Input
	diags spec.Diagnostics

	services  []service
	workloads []workload
	pods      map[nsName]workload // by pod name, to give endpoints an identity
	slices    map[nsName][]slice  // by Service name
	endpoints map[nsName]endpoints
	exports   map[nsName]objMeta // ServiceExports, by the Service they export
}

type nsName struct{ ns, name string }

// objMeta is what every decoded object shares: where it came from and its
// namespace after defaulting.
type objMeta struct {
	src spec.Source
	obj spec.Object
}

func (m objMeta) origin(path string) spec.Origin {
	return spec.Origin{Source: m.src, Object: m.obj, Path: path}
}

func (t *translator) errorf(m objMeta, field, format string, args ...any) {
	t.diags.Errorf(m.src, m.obj, field, format, args...)
}

func (t *translator) warnf(m objMeta, field, format string, args ...any) {
	t.diags.Warnf(m.src, m.obj, field, format, args...)
}

// index decodes every object Translate handles and files it by kind, so the
// services can then be evaluated against all workloads and endpoints,
// whatever order the documents came in.
func (t *translator) index(objs []adapters.Object) {
	t.pods = map[nsName]workload{}
	t.slices = map[nsName][]slice{}
	t.endpoints = map[nsName]endpoints{}
	t.exports = map[nsName]objMeta{}
	for i := range objs {
		o := &objs[i]
		k, ok := lookup(o)
		if !ok {
			continue
		}
		m := objMeta{src: o.Source, obj: o.SpecObject()}
		if k.namespaced {
			m.obj.Namespace = cmp.Or(o.Namespace, t.opts.DefaultNamespace)
		}
		if o.Version() != k.version {
			use := strings.TrimPrefix(k.group+"/"+k.version, "/")
			if strings.Contains(k.version, "/") {
				use = k.version
			}
			t.errorf(m, "apiVersion", "%s %s is not supported; use %s", o.APIVersion, o.Kind, use)
			continue
		}
		if !t.checkMeta(m, k) {
			continue
		}
		t.decodeKind(m, k, o.Raw)
	}
}

// checkMeta checks the name and namespace as the API server would, since
// both end up in DNS names and SPIFFE IDs.
func (t *translator) checkMeta(m objMeta, k kind) bool {
	ok := true
	if m.obj.Name == "" {
		t.errorf(m, "metadata.name", "required")
		ok = false
	} else {
		check := validation.IsDNS1123Subdomain
		// A ServiceExport is named after its Service.
		if k.kind == "Service" || k.kind == "Namespace" || k.kind == "ServiceExport" {
			check = validation.IsDNS1123Label
		}
		if errs := check(m.obj.Name); len(errs) > 0 {
			t.errorf(m, "metadata.name", "invalid name %q: %s", m.obj.Name, errs[0])
			ok = false
		}
	}
	if k.namespaced {
		if errs := validation.IsDNS1123Label(m.obj.Namespace); len(errs) > 0 {
			t.errorf(m, "metadata.namespace", "invalid namespace %q: %s", m.obj.Namespace, errs[0])
			ok = false
		}
	}
	return ok
}

func (t *translator) decodeKind(m objMeta, k kind, raw []byte) {
	switch k.kind {
	case "Namespace":
		// Read to check it; the model has no namespace object.
		decode(t, m, raw, &corev1.Namespace{})
	case "ServiceAccount":
		// Read to check it; identities come from the workloads that use
		// a service account, and a missing one may live in the cluster.
		decode(t, m, raw, &corev1.ServiceAccount{})
	case "Service":
		var v corev1.Service
		if decode(t, m, raw, &v) {
			t.services = append(t.services, service{objMeta: m, v: &v})
		}
	case "Pod":
		var v corev1.Pod
		if decode(t, m, raw, &v) {
			_, meshed := v.Annotations[InjectedAnnotation]
			w := workload{objMeta: m, labels: v.Labels, pod: &v.Spec, path: "spec", meshed: meshed}
			t.workloads = append(t.workloads, w)
			t.pods[nsName{m.obj.Namespace, m.obj.Name}] = w
		}
	case "Deployment":
		var v appsv1.Deployment
		if decode(t, m, raw, &v) {
			t.addTemplate(m, &v.Spec.Template)
		}
	case "StatefulSet":
		var v appsv1.StatefulSet
		if decode(t, m, raw, &v) {
			t.addTemplate(m, &v.Spec.Template)
		}
	case "DaemonSet":
		var v appsv1.DaemonSet
		if decode(t, m, raw, &v) {
			t.addTemplate(m, &v.Spec.Template)
		}
	case "ReplicaSet":
		var v appsv1.ReplicaSet
		if decode(t, m, raw, &v) {
			t.addTemplate(m, &v.Spec.Template)
		}
	case "EndpointSlice":
		var v discoveryv1.EndpointSlice
		if decode(t, m, raw, &v) {
			t.addSlice(m, &v)
		}
	case "ServiceExport":
		var v serviceExport
		if decode(t, m, raw, &v) {
			t.addServiceExport(m)
		}
	case "Endpoints":
		var v corev1.Endpoints //nolint:staticcheck // still served; read when no EndpointSlice is given
		// A later document of the same name replaces an earlier one,
		// as with kubectl apply (see adapters/pipeline).
		if decode(t, m, raw, &v) {
			t.endpoints[nsName{m.obj.Namespace, m.obj.Name}] = endpoints{objMeta: m, v: &v}
		}
	}
}

func (t *translator) addTemplate(m objMeta, tpl *corev1.PodTemplateSpec) {
	t.workloads = append(t.workloads, workload{objMeta: m, labels: tpl.Labels, pod: &tpl.Spec, path: "spec.template.spec"})
}

// decode unmarshals raw into v the way the API server's strict field
// validation does (sigs.k8s.io/json): case-sensitive keys, and every unknown
// or duplicate field reported with its path, not just the first. A type
// error stops decoding. A duplicate field makes the object invalid (which
// value was meant is unknowable); an unknown field is a warning unless
// Options.Strict, and then makes the object invalid too.
func decode(t *translator, m objMeta, raw []byte, v any) bool {
	strict, err := kjson.UnmarshalStrict(raw, v)
	if err != nil {
		field, msg := typeError(err)
		t.errorf(m, field, "%s", msg)
		return false
	}
	ok := true
	for _, e := range strict {
		var fe kjson.FieldError
		switch {
		case errors.As(e, &fe) && strings.Contains(e.Error(), "duplicate field"):
			t.errorf(m, fe.FieldPath(), "duplicate field")
			ok = false
		case errors.As(e, &fe) && !t.opts.Strict:
			t.warnf(m, fe.FieldPath(), "unknown field (ignored; an error with --strict)")
		case errors.As(e, &fe):
			t.errorf(m, fe.FieldPath(), "unknown field")
			ok = false
		default:
			t.errorf(m, "", "%v", e)
			ok = false
		}
	}
	return ok
}

// typeErrorText matches the message of the type error of sigs.k8s.io/json
// (its encoding/json fork keeps the type internal): "json: cannot unmarshal
// string into Go struct field ServicePort.spec.ports.port of type int32".
// The path has no list indexes; it still names the field.
var typeErrorText = regexp.MustCompile(`^json: cannot unmarshal (.+) into Go struct field [A-Za-z0-9_]*\.(\S+) of type (\S+)$`)

// typeError splits a decoding error into a field path and a message.
func typeError(err error) (field, msg string) {
	if m := typeErrorText.FindStringSubmatch(err.Error()); m != nil {
		return m[2], fmt.Sprintf("expected %s, found %s", m[3], m[1])
	}
	return "", strings.TrimPrefix(err.Error(), "json: ")
}
