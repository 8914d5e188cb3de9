package pipeline

import (
	"cmp"
	"io"
	"slices"
	"strings"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/kube"
	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/adapters/smi"
	"github.com/causeway-mesh/causeway/spec"
)

// Options tune translation and the build.
type Options struct {
	// TrustDomain of workload identities; "" means "cluster.local".
	TrustDomain string
	// DefaultNamespace for documents that name none; "" means "default".
	DefaultNamespace string
	// Strict makes references to objects missing from the inputs errors
	// instead of warnings.
	Strict bool
	// Imports, when set, gives the Services and Links linked clusters
	// export to this one (federation.Links.Imports); they join the input
	// before spec.Build (spec.BuildWithImports), so manifests may name them.
	Imports func() spec.Input
}

func (o Options) withDefaults() Options {
	o.TrustDomain = cmp.Or(o.TrustDomain, "cluster.local")
	o.DefaultNamespace = cmp.Or(o.DefaultNamespace, "default")
	return o
}

// Translator is one entry of the registry: which objects it reads and how
// it turns them into a spec fragment.
type Translator struct {
	Name      string
	Handles   func(*adapters.Object) bool
	Translate func([]adapters.Object, Options) (spec.Input, spec.Diagnostics)
}

// Translators is the registry, in order: an object goes to the first entry
// that handles it. Core Kubernetes kinds first, since SMI objects refer to
// the Services and ServiceAccounts they describe; then SMI; then local
// mode's causeway.dev kinds.
func Translators() []Translator {
	return []Translator{
		{
			Name:    "kube",
			Handles: kube.Handles,
			Translate: func(objs []adapters.Object, o Options) (spec.Input, spec.Diagnostics) {
				// Undecided ports are settled by decideProtocols once the
				// SMI objects are known.
				return kube.Translate(objs, kube.Options{TrustDomain: o.TrustDomain, DefaultNamespace: o.DefaultNamespace, LeaveUndecided: true, Strict: o.Strict})
			},
		},
		{
			Name:    "smi",
			Handles: smi.Handles,
			Translate: func(objs []adapters.Object, o Options) (spec.Input, spec.Diagnostics) {
				return smi.Translate(objs, smi.Options{TrustDomain: o.TrustDomain, DefaultNamespace: o.DefaultNamespace, Strict: o.Strict})
			},
		},
		{Name: "local", Handles: local.Handles, Translate: func(objs []adapters.Object, o Options) (spec.Input, spec.Diagnostics) {
			return local.Translate(objs, local.Options{TrustDomain: o.TrustDomain, DefaultNamespace: o.DefaultNamespace})
		}},
	}
}

// Translate runs Translators() over objs and merges what they produce. It
// returns the merged input, every diagnostic (sorted) and, in input order,
// the objects no translator handles.
func Translate(objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics, []adapters.Object) {
	return TranslateWith(Translators(), objs, opts)
}

// TranslateWith is Translate with an explicit registry.
func TranslateWith(ts []Translator, objs []adapters.Object, opts Options) (spec.Input, spec.Diagnostics, []adapters.Object) {
	opts = opts.withDefaults()
	// Objects are taken in file and document order, whatever order the
	// paths were given in, so that even the handling of duplicates (the
	// first one wins) does not depend on the command line.
	objs = slices.Clone(objs)
	slices.SortStableFunc(objs, func(a, b adapters.Object) int {
		return cmp.Or(strings.Compare(a.Source.File, b.Source.File), cmp.Compare(a.Source.Document, b.Source.Document))
	})
	var diags spec.Diagnostics
	var ignored []adapters.Object
	groups := make([][]adapters.Object, len(ts))
	for i := range objs {
		o := &objs[i]
		n := slices.IndexFunc(ts, func(t Translator) bool { return t.Handles(o) })
		if n < 0 {
			ignored = append(ignored, *o)
			continue
		}
		if o.Name == "" {
			diags.Errorf(o.Source, spec.Object{Kind: o.Kind, Namespace: o.Namespace, Name: "(unnamed)"}, "metadata.name", "required")
			continue
		}
		groups[n] = append(groups[n], *o)
	}
	in := spec.Input{TrustDomain: opts.TrustDomain}
	for i, t := range ts {
		if len(groups[i]) == 0 {
			continue
		}
		frag, d := t.Translate(groups[i], opts)
		in.Add(frag)
		diags = append(diags, d...)
	}
	// A fragment may set the trust domain (local mode's Mesh object does);
	// otherwise it stays the option's.
	decideProtocols(&in)
	diags.Sort()
	return in, diags, ignored
}

// Load reads paths (see manifest.Read), translates the objects and builds a
// snapshot. The error is only for paths that cannot be read; everything
// wrong inside the manifests is in the diagnostics, sorted. When they hold
// an error the snapshot must not be published; it is still returned so a
// tool can show what would be built.
func Load(paths []string, stdin io.Reader, opts Options) (*spec.Snapshot, spec.Diagnostics, []adapters.Object, error) {
	objs, diags, index, err := manifest.ReadIndexed(paths, stdin)
	if err != nil {
		return nil, nil, nil, err
	}
	snap, d, ignored := Build(objs, opts)
	diags = append(diags, d...)
	// Point each diagnostic at the line of its field, not only at the
	// start of its document.
	index.Locate(diags)
	diags.Sort()
	return snap, diags, ignored, nil
}

// Build translates objs and builds a snapshot from them.
func Build(objs []adapters.Object, opts Options) (*spec.Snapshot, spec.Diagnostics, []adapters.Object) {
	in, diags, ignored := Translate(objs, opts)
	var imp spec.Input
	if opts.Imports != nil {
		imp = opts.Imports()
	}
	snap, d := spec.BuildWithImports(in, imp, spec.BuildOptions{Strict: opts.Strict})
	diags = append(diags, d...)
	diags.Sort()
	return snap, diags, ignored
}

// Ignored renders an object no translator read, for listing:
// "FILE:LINE: Kind namespace/name (not used by Causeway)".
func Ignored(o adapters.Object) string {
	d := spec.Diagnostic{Source: o.Source, Object: o.SpecObject()}
	if d.Object.Kind != "" && d.Object.Name == "" {
		d.Object.Name = "(unnamed)"
	}
	return strings.TrimSuffix(d.String(), ": ") + " (not used by Causeway)"
}
