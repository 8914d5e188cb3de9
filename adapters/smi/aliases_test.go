package smi

import (
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// Build's diagnostics must name the fields as the user wrote them, even where
// an SMI version keeps them somewhere else than the model's names suggest.
func TestBuildDiagnosticsUseSMIFieldNames(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, src, want string }{
		{"v1alpha1 TrafficTarget rules are specs", `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: t, namespace: ns}
destination: {kind: ServiceAccount, name: api}
sources: [{kind: ServiceAccount, name: web}]
specs:
- {kind: HTTPRouteGroup, name: missing, matches: [all]}
`, "TrafficTarget ns/t: specs[0]: warning: http route ns/missing not found"},
		{"v1alpha4 top-level matches slip", `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: ns}
matches:
- {name: a, methods: [GET]}
- {name: a, methods: [POST]}
`, "HTTPRouteGroup ns/r: matches[1].name: duplicate match name \"a\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, diags := Translate(objects(t, tc.src), Options{})
			_, bd := spec.Build(in, spec.BuildOptions{})
			all := append(diags, bd...)
			var lines []string
			for _, d := range all {
				lines = append(lines, d.String())
			}
			if !strings.Contains(strings.Join(lines, "\n"), tc.want) {
				t.Errorf("diagnostics:\n%s\nwant one containing %q", strings.Join(lines, "\n"), tc.want)
			}
		})
	}
}
