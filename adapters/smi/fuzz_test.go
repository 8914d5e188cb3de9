package smi

import (
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// fuzzTranslate runs one document through Translate and Build and checks the
// properties every input must keep: no panic, every diagnostic names an
// object kind, the same input gives the same output, and an object with an
// error is never translated.
func fuzzTranslate(t *testing.T, group, kind, version string, raw []byte, strict bool) {
	objs := []adapters.Object{{
		Source:     spec.Source{File: "fuzz.json"},
		APIVersion: group + "/" + version,
		Kind:       kind,
		Namespace:  "fz",
		Name:       "obj",
		Raw:        raw,
	}}
	opts := Options{Strict: strict}
	in, ds := Translate(objs, opts)
	in2, ds2 := Translate(objs, opts)
	if !reflect.DeepEqual(in, in2) || !reflect.DeepEqual(ds, ds2) {
		t.Fatalf("Translate is not deterministic")
	}
	for _, d := range ds {
		if d.Object.Kind == "" {
			t.Errorf("diagnostic names no kind: %s", d)
		}
	}
	n := len(in.Splits) + len(in.Routes) + len(in.Policies)
	if ds.HasErrors() && n > 0 {
		t.Errorf("object with errors translated: %v", ds)
	}
	_, bds := spec.Build(in, spec.BuildOptions{Strict: strict})
	for _, d := range bds {
		if d.Object.Kind == "" {
			t.Errorf("Build diagnostic names no kind: %s", d)
		}
	}
}

var fuzzVersions = []string{"v1alpha1", "v1alpha2", "v1alpha3", "v1alpha4", "v1alpha9"}

func FuzzSplit(f *testing.F) {
	f.Add(uint8(1), []byte(`{"spec":{"service":"web","backends":[{"service":"a","weight":90},{"service":"b","weight":10}]}}`), false)
	f.Add(uint8(0), []byte(`{"spec":{"service":"web.shop.svc","backends":[{"service":"a","weight":"500m"}]}}`), false)
	f.Add(uint8(3), []byte(`{"spec":{"service":"web","matches":[{"kind":"HTTPRouteGroup","name":"r"}],"backends":[{"service":"a","wieght":1}]}}`), true)
	f.Fuzz(func(t *testing.T, v uint8, raw []byte, strict bool) {
		fuzzTranslate(t, GroupSplit, "TrafficSplit", fuzzVersions[int(v)%len(fuzzVersions)], raw, strict)
	})
}

func FuzzAccess(f *testing.F) {
	f.Add(uint8(2), uint8(0), []byte(`{"spec":{"destination":{"kind":"ServiceAccount","name":"web","port":"9091"},"rules":[{"kind":"HTTPRouteGroup","name":"r","matches":["m"]}],"sources":[{"kind":"ServiceAccount","name":"a"}]}}`), false)
	f.Add(uint8(0), uint8(0), []byte(`{"destination":{"kind":"ServiceAccount","name":"web","port":8080},"specs":[{"kind":"HTTPRouteGroup","name":"r"}]}`), false)
	f.Add(uint8(3), uint8(1), []byte(`{"spec":{"schemes":{"serviceAccount":"a","spiffeIdentities":["cluster.local/ns/x/sa/y"]}}}`), true)
	f.Add(uint8(2), uint8(0), []byte(`{"metadata":{"annotations":{"causeway.dev/source-trust-domains":"east.td, ,x/y"}},"spec":{"destination":{"kind":"ServiceAccount","name":"web"},"sources":[{"kind":"ServiceAccount","name":"a"}]}}`), false)
	f.Fuzz(func(t *testing.T, v, k uint8, raw []byte, strict bool) {
		kind := []string{"TrafficTarget", "IdentityBinding"}[int(k)%2]
		fuzzTranslate(t, GroupAccess, kind, fuzzVersions[int(v)%len(fuzzVersions)], raw, strict)
	})
}

func FuzzSpecs(f *testing.F) {
	f.Add(uint8(3), uint8(0), []byte(`{"spec":{"matches":[{"name":"a","pathRegex":"/a","methods":["*"],"headers":[{"x":"y"}]}]}}`), false)
	f.Add(uint8(3), uint8(0), []byte(`{"matches":[{"name":"a","headers":{"x-debug":1}}]}`), false)
	f.Add(uint8(3), uint8(1), []byte(`{"spec":{"matches":{"ports":[80,443]}}}`), false)
	f.Add(uint8(3), uint8(2), []byte(`{"spec":{"matches":{"ports":[53]}}}`), true)
	f.Fuzz(func(t *testing.T, v, k uint8, raw []byte, strict bool) {
		kind := []string{"HTTPRouteGroup", "TCPRoute", "UDPRoute"}[int(k)%3]
		fuzzTranslate(t, GroupSpecs, kind, fuzzVersions[int(v)%len(fuzzVersions)], raw, strict)
	})
}
