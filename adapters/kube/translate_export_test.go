package kube

import (
	"slices"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// TestTranslateExport: a Service is exported by the causeway.dev/export
// label or annotation, or by an MCS ServiceExport of the same name; bad
// values and contradictions are diagnostics naming the file, object and
// field, and an export of a Service that is not given is a warning.
func TestTranslateExport(t *testing.T) {
	t.Parallel()
	svc := func(meta string) string {
		return "apiVersion: v1\nkind: Service\nmetadata: {name: books, namespace: shop" + meta + "}\nspec: {ports: [{name: http, port: 80}]}\n"
	}
	const se = "---\napiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata: {name: books, namespace: shop}\n"
	tests := []struct {
		name   string
		yaml   string
		export bool
		want   []string
	}{
		{name: "not exported by default", yaml: svc(""), export: false},
		{name: "annotation true", yaml: svc(`, annotations: {causeway.dev/export: "true"}`), export: true},
		{name: "label true, any case", yaml: svc(`, labels: {causeway.dev/export: "True"}`), export: true},
		{name: "annotation false", yaml: svc(`, annotations: {causeway.dev/export: "false"}`), export: false},
		{name: "label and annotation agree", yaml: svc(`, labels: {causeway.dev/export: "true"}, annotations: {causeway.dev/export: "true"}`), export: true},
		{name: "ServiceExport", yaml: svc("") + se, export: true},
		{
			name: "ServiceExport with status written by a controller",
			yaml: svc("") + se + "status: {conditions: [{type: Valid, status: \"True\", reason: Exported, message: ok, lastTransitionTime: \"2024-01-01T00:00:00Z\"}]}\n", export: true,
		},
		{
			name: "a bad value is an error on the annotation",
			yaml: svc(`, annotations: {causeway.dev/export: "yes"}`), export: false,
			want: []string{`in.yaml:1: Service shop/books: metadata.annotations["causeway.dev/export"]: "yes": want "true" or "false"`},
		},
		{
			name: "a bad label value is an error on the label",
			yaml: svc(`, labels: {causeway.dev/export: "1"}`), export: false,
			want: []string{`in.yaml:1: Service shop/books: metadata.labels["causeway.dev/export"]: "1": want "true" or "false"`},
		},
		{
			name: "label and annotation disagree: not exported, an error",
			yaml: svc(`, labels: {causeway.dev/export: "true"}, annotations: {causeway.dev/export: "false"}`), export: false,
			want: []string{`in.yaml:1: Service shop/books: metadata.annotations["causeway.dev/export"]: says false but the label of the same name says true`},
		},
		{
			name: "a ServiceExport wins over false, with a warning",
			yaml: svc(`, annotations: {causeway.dev/export: "false"}`) + se, export: true,
			want: []string{`in.yaml:6: ServiceExport shop/books: metadata.name: warning: exports Service shop/books although the Service says causeway.dev/export: "false"`},
		},
		{
			name: "a ServiceExport without its Service",
			yaml: svc("") + strings.ReplaceAll(se, "name: books", "name: gone"), export: false,
			want: []string{`in.yaml:6: ServiceExport shop/gone: metadata.name: warning: Service shop/gone is not among the inputs; nothing exported`},
		},
		{
			name: "a ServiceExport of another version is unsupported",
			yaml: svc("") + strings.ReplaceAll(se, "v1alpha1", "v1beta1"), export: false,
			want: []string{`in.yaml:6: ServiceExport shop/books: apiVersion: multicluster.x-k8s.io/v1beta1 ServiceExport is not supported; use multicluster.x-k8s.io/v1alpha1`},
		},
		{
			name: "a ServiceExport with a wrong type",
			yaml: svc("") + se + "status: {conditions: 7}\n", export: false,
			want: []string{`in.yaml:6: ServiceExport shop/books: status.conditions: expected []v1.Condition, found number`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, diags := Translate(objects(t, tc.yaml), Options{})
			got := diagStrings(diags)
			if !slices.Equal(got, append([]string{}, tc.want...)) {
				t.Fatalf("diagnostics:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			i := slices.IndexFunc(in.Services, func(s spec.Service) bool { return s.Key.Name == "books" })
			if i < 0 {
				t.Fatalf("no Service books in %+v", in.Services)
			}
			if in.Services[i].Export != tc.export {
				t.Fatalf("Export = %v, want %v", in.Services[i].Export, tc.export)
			}
		})
	}
}

func TestHandlesServiceExport(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"multicluster.x-k8s.io/v1alpha1", "multicluster.x-k8s.io/v1alpha2"} {
		if !Handles(&adapters.Object{APIVersion: v, Kind: "ServiceExport"}) {
			t.Errorf("%s ServiceExport not handled", v)
		}
	}
	if Handles(&adapters.Object{APIVersion: "multicluster.x-k8s.io/v1alpha1", Kind: "ServiceImport"}) {
		t.Error("ServiceImport handled: Causeway makes imports itself")
	}
}
