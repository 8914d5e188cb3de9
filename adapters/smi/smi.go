package smi

import (
	"cmp"

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
	// Strict turns the translator's "may live in the cluster" warnings into
	// errors, like spec.BuildOptions.Strict does for Build.
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
	switch o.Group() {
	case GroupSplit, GroupAccess, GroupSpecs, GroupMetrics:
		return true
	}
	return false
}

// Translate turns the SMI objects among objs into a spec.Input fragment.
// Objects Handles rejects are skipped. A bad object yields diagnostics and
// is left out; the others are still translated.
func Translate(objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics) {
	opts = opts.withDefaults()
	t := translator{opts: opts}
	for i := range objs {
		if Handles(&objs[i]) {
			t.object(&objs[i])
		}
	}
	return t.in, t.diags
}

type translator struct {
	opts  Options
	in    spec.Input
	diags spec.Diagnostics
}

func (t *translator) object(o *adapters.Object) {
	t.diags.Errorf(o.Source, o.SpecObject(), "apiVersion", "%s %s: not translated yet", o.APIVersion, o.Kind)
}
