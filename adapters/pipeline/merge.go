package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/causeway-mesh/causeway/spec"
)

// lastWins keeps, among model objects with the same identity, the one from
// the last document (file, then document order), which is what the cluster
// holds after `kubectl apply -f` of the same paths. Example sets use this:
// osm-demo applies the bookstore Service twice, emojivoto and linkerd-smi
// hold successive versions of one TrafficSplit, and a TrafficSplit in
// v1alpha1 and v1alpha4 with one name is one object served in two versions.
// Every document was still translated, so a problem in a replaced one is
// reported. A replacement that changes something is a warning on the
// replaced document; an identical repeat says nothing.
func lastWins(in *spec.Input) spec.Diagnostics {
	var diags spec.Diagnostics
	in.Services = dedupe(in.Services, func(s spec.Service) string { return s.Key.String() }, func(s spec.Service) spec.Origin { return s.Origin }, &diags)
	in.Routes = dedupe(in.Routes, func(r spec.Route) string { return string(r.Kind) + " " + r.Key.String() }, func(r spec.Route) spec.Origin { return r.Origin }, &diags)
	in.Splits = dedupe(in.Splits, func(s spec.Split) string { return s.Key.String() }, func(s spec.Split) spec.Origin { return s.Origin }, &diags)
	in.Policies = dedupe(in.Policies, func(p spec.AccessPolicy) string { return p.Key.String() }, func(p spec.AccessPolicy) spec.Origin { return p.Origin }, &diags)
	return diags
}

func dedupe[T any](items []T, key func(T) string, origin func(T) spec.Origin, diags *spec.Diagnostics) []T {
	last := map[string]int{}
	for i, it := range items {
		k := key(it)
		if j, ok := last[k]; ok && later(origin(items[j]), origin(it)) {
			continue
		}
		last[k] = i
	}
	out := items[:0:0]
	for i, it := range items {
		j := last[key(it)]
		if j == i {
			out = append(out, it)
			continue
		}
		if same(it, items[j]) {
			continue
		}
		o, w := origin(it), origin(items[j])
		diags.Warnf(o.Source, o.Object, "metadata.name", "replaced by %s, which comes later (the last document wins, as with kubectl apply)", where(w))
	}
	return out
}

// later reports whether a comes after b in file and document order.
func later(a, b spec.Origin) bool {
	if c := strings.Compare(a.Source.File, b.Source.File); c != 0 {
		return c > 0
	}
	return a.Source.Document > b.Source.Document
}

// same compares two model objects by their serialised form, which leaves
// out the Origin.
func same(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}

func where(o spec.Origin) string {
	if o.Source.Line > 0 {
		return fmt.Sprintf("%s:%d", o.Source.File, o.Source.Line)
	}
	return o.Source.File
}
