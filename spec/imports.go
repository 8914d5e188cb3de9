package spec

import "slices"

// BuildWithImports builds in together with imp, the Services and Links that
// linked clusters export to this one (federation's imports: Services named
// <name>-<cluster>, DESIGN.md §7). Imports enter before Build, so a
// TrafficSplit or access policy here may name one, and it is resolved like
// any local Service.
//
// Each service linked clusters export also gets its one name across
// clusters, ns/name, with their gateway endpoints at FailoverPriority behind
// this cluster's own (withFailover in failover.go says when).
//
// Only imp's Services and Links are taken: trust domain, mode and policy
// stay this cluster's. An import that has a local Service's name is left out
// with a warning, so a peer can never take over a local name; a Link for a
// cluster the input already links (a manifest's ClusterLink) is left out
// too. If the imports make the build fail, the input is built without them
// and the failure is reported as a warning: a peer must never stop local
// config from being served.
func BuildWithImports(in Input, imp Input, opts BuildOptions) (*Snapshot, Diagnostics) {
	if len(imp.Services) == 0 && len(imp.Links) == 0 {
		return Build(in, opts)
	}
	var diags Diagnostics
	with := in
	with.Services = slices.Clone(in.Services)
	with.Links = slices.Clone(in.Links)
	local := make(map[Key]bool, len(in.Services))
	for _, s := range in.Services {
		local[s.Key] = true
	}
	for _, s := range imp.Services {
		if local[s.Key] {
			diags.Warnf(s.Origin.Source, s.Origin.Object, "", "import %s left out: a local Service has that name", s.Key)
			continue
		}
		with.Services = append(with.Services, s)
	}
	with.Services = withFailover(with.Services, len(in.Services), &diags)
	for _, l := range imp.Links {
		if !slices.ContainsFunc(in.Links, func(x Link) bool { return x.Cluster == l.Cluster }) {
			with.Links = append(with.Links, l)
		}
	}
	snap, d := Build(with, opts)
	if !d.HasErrors() {
		return snap, append(diags, d...)
	}
	alone, ad := Build(in, opts)
	if ad.HasErrors() {
		// The input is broken by itself: report that, not the imports.
		return alone, ad
	}
	first := d.Errors()[0]
	ad.Warnf(first.Source, first.Object, first.Field, "imports left out, they do not build with this cluster's input: %s", first.Message)
	return alone, ad
}
