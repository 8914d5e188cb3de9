package manifest

import (
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

func TestIndexLine(t *testing.T) {
	t.Parallel()
	const data = `# a split
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata:
  name: s
spec:
  service: web
  backends:
  - service: a
    weight: 1
  - service: b
    weight: -1
---
{"apiVersion": "v1", "kind": "Service",
 "metadata": {"name": "x"},
 "spec": {"ports": [{"port": 1},
                    {"port": 2, "nmae": "y"}]}}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Pod
  metadata: {name: p}
`
	objs, diags, ix := ParseIndexed("i.yaml", []byte(data))
	if len(diags) != 0 || len(objs) != 3 {
		t.Fatalf("objs %d, diags %v", len(objs), diags)
	}
	doc := func(n int) spec.Source { return objs[n].Source }
	tests := []struct {
		name  string
		src   spec.Source
		field string
		line  int
		found bool
	}{
		{"a field", doc(0), "spec.backends[1].weight", 12, true},
		{"a list item", doc(0), "spec.backends[1]", 11, true},
		{"a mapping key", doc(0), "metadata.name", 5, true},
		{"a missing field falls back to its parent", doc(0), "spec.backends[1].port", 11, true},
		{"a path without indexes falls back to what exists", doc(0), "spec.backends.weight", 8, true},
		{"nothing written at all", doc(0), "status.x", 0, false},
		{"an empty field", doc(0), "", 0, false},
		{"inside a flow-style JSON document", doc(1), "spec.ports[1].nmae", 17, true},
		{"a List item is not indexed", doc(2), "metadata.name", 0, false},
		{"another file", spec.Source{File: "other.yaml"}, "spec", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			line, ok := ix.Line(tc.src, tc.field)
			if line != tc.line || ok != tc.found {
				t.Fatalf("Line(%q) = %d, %v; want %d, %v", tc.field, line, ok, tc.line, tc.found)
			}
		})
	}
}

func TestIndexLocate(t *testing.T) {
	t.Parallel()
	objs, _, ix := ParseIndexed("i.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  selectr: {}\n"))
	src := objs[0].Source
	ds := spec.Diagnostics{
		{Severity: spec.SeverityError, Source: src, Field: "spec.selectr", Message: "unknown field"},
		{Severity: spec.SeverityError, Source: spec.Source{File: "i.yaml", Line: 3}, Field: "spec.selectr", Message: "already precise"},
		{Severity: spec.SeverityError, Source: src, Field: "", Message: "no field"},
	}
	ix.Locate(ds)
	if ds[0].Source.Line != 6 || ds[1].Source.Line != 3 || ds[2].Source.Line != 1 {
		t.Fatalf("lines = %d, %d, %d; want 6, 3, 1", ds[0].Source.Line, ds[1].Source.Line, ds[2].Source.Line)
	}
	var nilIndex *Index
	nilIndex.Locate(ds) // must not panic
}
