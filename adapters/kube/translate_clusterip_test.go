package kube

import (
	"slices"
	"testing"
)

// TestTranslateClusterIPs: the Service's virtual addresses reach the model
// (a transparent proxy maps redirected connections to them), from
// spec.clusterIPs or the older spec.clusterIP, and never "None".
func TestTranslateClusterIPs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		spec string // the Service's spec fields besides ports
		want []string
	}{
		{"clusterIPs", "clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10]", []string{"10.96.0.10"}},
		{"dual stack keeps both", "clusterIP: 10.96.0.10, clusterIPs: [10.96.0.10, 'fd00::a']", []string{"10.96.0.10", "fd00::a"}},
		{"only the old field", "clusterIP: 10.96.0.11", []string{"10.96.0.11"}},
		{"headless", "clusterIP: None, clusterIPs: [None]", nil},
		{"not allocated yet", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sp := "{ports: [{name: http, port: 80}]}"
			if c.spec != "" {
				sp = "{" + c.spec + ", ports: [{name: http, port: 80}]}"
			}
			in, diags := Translate(objects(t, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: "+sp+"\n"), Options{})
			if len(diags) != 0 {
				t.Fatalf("diagnostics: %v", diagStrings(diags))
			}
			if len(in.Services) != 1 {
				t.Fatalf("%d services", len(in.Services))
			}
			if got := in.Services[0].ClusterIPs; !slices.Equal(got, c.want) {
				t.Errorf("clusterIPs = %q, want %q", got, c.want)
			}
		})
	}
}
