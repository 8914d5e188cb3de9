package smi

import (
	"reflect"
	"testing"
)

// TestSourceTrustDomains: the causeway.dev/source-trust-domains annotation
// on a TrafficTarget (any version) allows each ServiceAccount source in the
// listed trust domains too; IdentityBinding sources, which name whole SPIFFE
// IDs, are left as they are; bad values are errors on the annotation that
// leave the TrafficTarget out.
func TestSourceTrustDomains(t *testing.T) {
	t.Parallel()
	const ann = "causeway.dev/source-trust-domains"
	v1alpha3 := func(annotations string) string {
		return `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: t, namespace: shop, annotations: {` + annotations + `}}
spec:
  destination: {kind: ServiceAccount, name: web}
  rules: [{kind: TCPRoute, name: raw}]
  sources:
  - {kind: ServiceAccount, name: buyer, namespace: buyers}
  - {kind: ServiceAccount, name: admin}`
	}
	const field = `metadata.annotations["causeway.dev/source-trust-domains"]`
	cases := []struct {
		name    string
		yaml    string
		sources []string // nil: the policy is left out
		diags   []diag
	}{
		{
			name:    "no annotation: local callers only",
			yaml:    v1alpha3(""),
			sources: []string{"spiffe://cluster.local/ns/buyers/sa/buyer", "spiffe://cluster.local/ns/shop/sa/admin"},
		},
		{
			name: "two trust domains, blanks and an empty entry ignored",
			yaml: v1alpha3(ann + `: " west.causeway.local, ,other.td "`),
			sources: []string{
				"spiffe://cluster.local/ns/buyers/sa/buyer", "spiffe://west.causeway.local/ns/buyers/sa/buyer", "spiffe://other.td/ns/buyers/sa/buyer",
				"spiffe://cluster.local/ns/shop/sa/admin", "spiffe://west.causeway.local/ns/shop/sa/admin", "spiffe://other.td/ns/shop/sa/admin",
			},
		},
		{
			name:    "the local trust domain listed is not a duplicate",
			yaml:    v1alpha3(ann + `: "cluster.local"`),
			sources: []string{"spiffe://cluster.local/ns/buyers/sa/buyer", "spiffe://cluster.local/ns/shop/sa/admin"},
		},
		{
			name:    "an empty list is a warning",
			yaml:    v1alpha3(ann + `: ""`),
			sources: []string{"spiffe://cluster.local/ns/buyers/sa/buyer", "spiffe://cluster.local/ns/shop/sa/admin"},
			diags:   []diag{w(field, "lists no trust domain")},
		},
		{
			name:  "a bad entry is an error naming it",
			yaml:  v1alpha3(ann + `: "east.causeway.local,Not_A_Domain"`),
			diags: []diag{e(field, `entry 1, "Not_A_Domain": not a trust domain name`)},
		},
		{
			name:  "a SPIFFE ID instead of a trust domain is an error",
			yaml:  v1alpha3(ann + `: "spiffe://east.causeway.local/ns/a/sa/b"`),
			diags: []diag{e(field, "not a trust domain name")},
		},
		{
			name: "v1alpha1 keeps its fields at the top level",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: t, namespace: shop, annotations: {` + ann + `: east.td}}
destination: {kind: ServiceAccount, name: web}
specs: [{kind: TCPRoute, name: raw}]
sources: [{kind: ServiceAccount, name: buyer}]`,
			sources: []string{"spiffe://cluster.local/ns/shop/sa/buyer", "spiffe://east.td/ns/shop/sa/buyer"},
		},
		{
			name: "v1alpha4: IdentityBinding sources are whole IDs and stay as they are",
			yaml: `
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: {name: b, namespace: shop}
spec:
  schemes: {spiffeIdentities: ["spiffe://partner.org/robot"]}
---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: {name: t, namespace: shop, annotations: {` + ann + `: east.td}}
spec:
  destination: {kind: ServiceAccount, name: web}
  rules: [{kind: TCPRoute, name: raw}]
  sources: [{kind: IdentityBinding, name: b}, {kind: ServiceAccount, name: buyer}]`,
			sources: []string{"spiffe://partner.org/robot", "spiffe://cluster.local/ns/shop/sa/buyer", "spiffe://east.td/ns/shop/sa/buyer"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, ds := Translate(objects(t, tc.yaml), Options{})
			checkDiags(t, ds, tc.diags)
			if tc.sources == nil {
				if len(in.Policies) != 0 {
					t.Fatalf("policy translated despite errors: %+v", in.Policies)
				}
				return
			}
			if len(in.Policies) != 1 {
				t.Fatalf("got %d policies, want 1", len(in.Policies))
			}
			if got := ids(in.Policies[0].Sources); !reflect.DeepEqual(got, tc.sources) {
				t.Fatalf("sources = %v\nwant      %v", got, tc.sources)
			}
		})
	}
}
