package smi

import (
	"cmp"
	"strings"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// Options tune Translate.
type Options struct {
	// TrustDomain is the SPIFFE trust domain of service account identities;
	// "" means "cluster.local".
	TrustDomain string
	// DefaultNamespace is used for objects whose document names none; ""
	// means "default".
	DefaultNamespace string
	// Strict makes unknown fields and references to IdentityBindings that are
	// not among the inputs errors instead of warnings (kubectl's strict field
	// validation; spec.BuildOptions.Strict does the same for other references).
	Strict bool
}

func (o Options) withDefaults() Options {
	o.TrustDomain = cmp.Or(o.TrustDomain, "cluster.local")
	o.DefaultNamespace = cmp.Or(o.DefaultNamespace, "default")
	return o
}

// SMI API groups.
const (
	GroupSplit   = "split.smi-spec.io"
	GroupAccess  = "access.smi-spec.io"
	GroupSpecs   = "specs.smi-spec.io"
	GroupMetrics = "metrics.smi-spec.io"
)

// Handles reports whether o belongs to an SMI API group, and so whether
// Translate will read it (possibly only to report it unknown).
func Handles(o *adapters.Object) bool {
	_, ok := registry[o.Group()]
	return ok
}

// handler translates one decoded-to-tree document of a known group, version
// and kind.
type handler func(d *doc)

// registry lists, per group and kind, the versions Causeway reads. It is the
// one place that says what SMI Causeway supports.
var registry = map[string]map[string]map[string]handler{
	GroupSplit: {
		"TrafficSplit": {
			"v1alpha1": splitV1alpha1,
			"v1alpha2": splitV1alpha2,
			"v1alpha3": splitV1alpha3,
			"v1alpha4": splitV1alpha4,
		},
	},
	GroupAccess: {
		"TrafficTarget": {
			"v1alpha1": targetV1alpha1,
			"v1alpha2": targetV1alpha2,
			"v1alpha3": targetV1alpha3,
			"v1alpha4": targetV1alpha4,
		},
		"IdentityBinding": {
			"v1alpha4": identityBindingV1alpha4,
		},
	},
	GroupSpecs: {
		"HTTPRouteGroup": {
			"v1alpha1": httpRouteGroup,
			"v1alpha2": httpRouteGroup,
			"v1alpha3": httpRouteGroup,
			"v1alpha4": httpRouteGroup,
		},
		"TCPRoute": {
			"v1alpha1": tcpRouteV1alpha1,
			"v1alpha2": tcpRouteV1alpha2,
			"v1alpha3": tcpRouteV1alpha3,
			"v1alpha4": l4RouteV1alpha4,
		},
		"UDPRoute": {
			"v1alpha4": l4RouteV1alpha4,
		},
	},
	GroupMetrics: {
		"TrafficMetrics":     {"v1alpha1": trafficMetrics, "v1alpha2": trafficMetrics},
		"TrafficMetricsList": {"v1alpha1": trafficMetrics, "v1alpha2": trafficMetrics},
	},
}

// Translate turns the SMI objects among objs into a spec.Input fragment.
// Objects Handles rejects are skipped. An object with an error is left out
// (with its diagnostics); the others are still translated. Generic checks
// (duplicates, dangling references, weights, ports) are left to spec.Build,
// whose diagnostics name the SMI object and field through each Origin.
func Translate(objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics) {
	t := &translator{opts: opts.withDefaults(), bindings: map[spec.Key]*binding{}}
	for i := range objs {
		if Handles(&objs[i]) {
			t.object(objs[i])
		}
	}
	// TrafficTargets v1alpha4 may name IdentityBindings that come later in
	// the input, so they are resolved once every binding is known.
	for _, f := range t.deferred {
		f()
	}
	return t.in, t.diags
}

type translator struct {
	opts     Options
	in       spec.Input
	diags    spec.Diagnostics
	bindings map[spec.Key]*binding
	deferred []func()
}

func (t *translator) object(o adapters.Object) {
	o.Namespace = cmp.Or(o.Namespace, t.opts.DefaultNamespace)
	d := &doc{t: t, o: o}
	kinds := registry[o.Group()]
	versions, ok := kinds[o.Kind]
	if !ok {
		d.errorf("kind", "kind %q is not part of %s (Causeway reads: %s)", o.Kind, o.Group(), strings.Join(sortedKeys(kinds), ", "))
		return
	}
	h, ok := versions[o.Version()]
	if !ok {
		d.errorf("apiVersion", "unknown version %q of %s in %s (known: %s)", o.Version(), o.Kind, o.Group(), strings.Join(sortedKeys(versions), ", "))
		return
	}
	tree, err := parseTree(o.Raw)
	if err != nil {
		d.errorf("", "cannot read document: %v", err)
		return
	}
	d.tree = tree
	h(d)
}

// doc is one SMI document being translated.
type doc struct {
	t    *translator
	o    adapters.Object // Namespace already defaulted
	tree map[string]any
	// failed is set by errorf: the object must then be left out of the Input.
	failed bool
	// rename maps a field prefix the translator moved (rename[0]) back to
	// where the user wrote it (rename[1]), for diagnostics.
	rename [2]string
}

func (d *doc) field(f string) string {
	if d.rename[0] != "" {
		if rest, ok := strings.CutPrefix(f, d.rename[0]); ok {
			return d.rename[1] + rest
		}
	}
	return f
}

func (d *doc) object() spec.Object {
	obj := d.o.SpecObject()
	// Every diagnostic names a kind, even for a document that has none.
	obj.Kind = cmp.Or(obj.Kind, "(no kind)")
	return obj
}

func (d *doc) errorf(field, format string, args ...any) {
	d.failed = true
	d.t.diags.Errorf(d.o.Source, d.object(), d.field(field), format, args...)
}

func (d *doc) warnf(field, format string, args ...any) {
	d.t.diags.Warnf(d.o.Source, d.object(), d.field(field), format, args...)
}

// strictf is a warning, or an error under Options.Strict.
func (d *doc) strictf(field, format string, args ...any) {
	if d.t.opts.Strict {
		d.errorf(field, format, args...)
	} else {
		d.warnf(field, format, args...)
	}
}

func (d *doc) origin() spec.Origin {
	return spec.Origin{Source: d.o.Source, Object: d.object()}
}

func (d *doc) key(name string) spec.Key {
	return spec.Key{Namespace: d.o.Namespace, Name: name}
}

// decode reads the document strictly into out (a pointer to an SMI type).
// It reports false when the document cannot be used.
func (d *doc) decode(out any) bool {
	// status is written by controllers, not users; a manifest exported from a
	// cluster carries it and it means nothing to the translation.
	delete(d.tree, "status")
	for _, p := range decodeStrict(d.tree, out) {
		if p.unknown {
			d.strictf(p.field, "%s", p.msg)
		} else {
			d.errorf(p.field, "%s", p.msg)
		}
	}
	return !d.failed
}

func trafficMetrics(d *doc) {
	d.warnf("", "%s is served by the metrics API, not stored; ignored", d.o.Kind)
}
