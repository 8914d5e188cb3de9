package smi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

var docSep = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// parseObjects splits a multi-document YAML string and turns each non-empty
// document into an Object, as the manifest reader does.
func parseObjects(file, src string) ([]adapters.Object, error) {
	var out []adapters.Object
	for i, doc := range docSep.Split(src, -1) {
		raw, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if string(raw) == "null" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"metadata"`
		}
		// Not strict: only the header is wanted here.
		_ = json.Unmarshal(raw, &head)
		out = append(out, adapters.Object{
			Source:     spec.Source{File: file, Document: i},
			APIVersion: head.APIVersion,
			Kind:       head.Kind,
			Namespace:  head.Metadata.Namespace,
			Name:       head.Metadata.Name,
			Raw:        raw,
		})
	}
	return out, nil
}

func objects(t testing.TB, src string) []adapters.Object {
	t.Helper()
	objs, err := parseObjects("test.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// diag is an expected diagnostic: severity, exact field, message substring.
type diag struct {
	sev   spec.Severity
	field string
	msg   string
}

func e(field, msg string) diag { return diag{spec.SeverityError, field, msg} }
func w(field, msg string) diag { return diag{spec.SeverityWarning, field, msg} }

// checkDiags requires got to be exactly want, in any order.
func checkDiags(t *testing.T, got spec.Diagnostics, want []diag) {
	t.Helper()
	used := make([]bool, len(got))
	for _, wd := range want {
		found := false
		for i, g := range got {
			if !used[i] && g.Severity == wd.sev && g.Field == wd.field && strings.Contains(g.Message, wd.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing %s %s: %q", wd.sev, wd.field, wd.msg)
		}
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected %s", g)
		}
	}
}

// ids renders SPIFFE IDs for comparison.
func ids[T fmt.Stringer](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

// services builds spec.Services by hand: the
// Kubernetes adapter is not this package's business.
func services(ns string, ports []int32, names ...string) []spec.Service {
	var out []spec.Service
	for _, n := range names {
		s := spec.Service{Key: spec.Key{Namespace: ns, Name: n}, Origin: spec.Origin{Object: spec.Object{Kind: "Service", Namespace: ns, Name: n}}}
		for _, p := range ports {
			s.Ports = append(s.Ports, spec.Port{Port: p, Protocol: spec.ProtocolHTTP})
		}
		out = append(out, s)
	}
	return out
}

func be(k spec.Key, weight int64) spec.Backend { return spec.Backend{Service: k, Weight: weight} }
