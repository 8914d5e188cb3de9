package identity

import (
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

func TestWorkloadID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ns, sa  string
		want    string
		errPart string
	}{
		{"shop", "web", "spiffe://cluster.local/ns/shop/sa/web", ""},
		{"kube-system", "a.b-c", "spiffe://cluster.local/ns/kube-system/sa/a.b-c", ""},
		{strings.Repeat("a", 63), "x", "spiffe://cluster.local/ns/" + strings.Repeat("a", 63) + "/sa/x", ""},
		{strings.Repeat("a", 64), "x", "", "namespace"},
		{"a.b", "x", "", "namespace"},
		{"-a", "x", "", "namespace"},
		{"", "x", "", "namespace"},
		{"a", "", "", "serviceAccount"},
		{"a", "b..c", "", "serviceAccount"},
		{"a", "B", "", "serviceAccount"},
		{"a", "b/c", "", "serviceAccount"},
	}
	for _, tt := range tests {
		t.Run(tt.ns+"/"+tt.sa, func(t *testing.T) {
			t.Parallel()
			id, err := WorkloadID(td, tt.ns, tt.sa)
			if tt.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("WorkloadID = %v, %v; want error naming %s", id, err, tt.errPart)
				}
				return
			}
			if err != nil || id.String() != tt.want {
				t.Fatalf("WorkloadID = %v, %v; want %s", id, err, tt.want)
			}
		})
	}
	if _, err := WorkloadID(spiffeid.TrustDomain{}, "a", "b"); err == nil {
		t.Errorf("WorkloadID accepted an empty trust domain")
	}
}

func TestParseWorkloadID(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"spiffe://td/ns/a", "spiffe://td/ns/a/sa/b/c", "spiffe://td/sa/a/ns/b", "spiffe://td/ns/A/sa/b", "spiffe://td"} {
		t.Run(s, func(t *testing.T) {
			if ns, sa, err := ParseWorkloadID(spiffeid.RequireFromString(s)); err == nil {
				t.Errorf("ParseWorkloadID(%s) = %s, %s; want error", s, ns, sa)
			}
		})
	}
}

// FuzzWorkloadID: building never panics; a built ID is a valid SPIFFE ID that
// parses back to the same namespace and ServiceAccount.
func FuzzWorkloadID(f *testing.F) {
	f.Add("shop", "web")
	f.Add("a-b", "c.d")
	f.Add("x/y", "..")
	f.Add("%2F", "a")
	f.Fuzz(func(t *testing.T, ns, sa string) {
		id, err := WorkloadID(td, ns, sa)
		if err != nil {
			return
		}
		if _, err := spiffeid.FromString(id.String()); err != nil {
			t.Fatalf("WorkloadID(%q, %q) = %q, not a valid SPIFFE ID: %v", ns, sa, id, err)
		}
		gotNS, gotSA, err := ParseWorkloadID(id)
		if err != nil || gotNS != ns || gotSA != sa {
			t.Fatalf("ParseWorkloadID(%s) = %q, %q, %v; want %q, %q", id, gotNS, gotSA, err, ns, sa)
		}
	})
}
