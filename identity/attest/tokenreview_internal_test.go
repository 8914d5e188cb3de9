package attest

import (
	"strings"
	"testing"
)

func TestServiceAccountUser(t *testing.T) {
	t.Parallel()
	tests := []struct {
		user       string
		ns, sa     string
		wantParsed bool
	}{
		{"system:serviceaccount:shop:web", "shop", "web", true},
		{"system:serviceaccount:kube-system:default", "kube-system", "default", true},
		{"system:serviceaccount:shop:", "", "", false},
		{"system:serviceaccount::web", "", "", false},
		{"system:serviceaccount:shop", "", "", false},
		{"system:serviceaccount:shop:web:extra", "", "", false},
		{"system:serviceaccounts:shop", "", "", false},
		{"kubetest-admin", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			t.Parallel()
			ns, sa, ok := serviceAccountUser(tt.user)
			if ok != tt.wantParsed || ns != tt.ns || sa != tt.sa {
				t.Errorf("serviceAccountUser(%q) = %q, %q, %v; want %q, %q, %v", tt.user, ns, sa, ok, tt.ns, tt.sa, tt.wantParsed)
			}
		})
	}
}

// FuzzServiceAccountUser: whatever parses joins back to the same username,
// with no separator inside either part.
func FuzzServiceAccountUser(f *testing.F) {
	for _, s := range []string{"system:serviceaccount:shop:web", "system:serviceaccount::", "system:serviceaccount:a:b:c", "admin"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		ns, sa, ok := serviceAccountUser(user)
		if !ok {
			return
		}
		if ns == "" || sa == "" || strings.Contains(ns, ":") || strings.Contains(sa, ":") {
			t.Fatalf("%q parsed to %q, %q", user, ns, sa)
		}
		if back := "system:serviceaccount:" + ns + ":" + sa; back != user {
			t.Fatalf("%q parsed to %q, %q, which joins to %q", user, ns, sa, back)
		}
	})
}

// TestTokenExpiry: exp is read only from JWTs; anything else has none, so
// only CacheTTL bounds its cache entry.
func TestTokenExpiry(t *testing.T) {
	t.Parallel()
	// Header {"alg":"RS256","typ":"JWT"}, payload {"exp":1700000000}, dummy signature.
	const withExp = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2ln"
	const noExp = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name, token string
		want        int64 // unix seconds; 0: none
	}{
		{"jwt with exp", withExp, 1700000000},
		{"jwt without exp", noExp, 0},
		{"static token", "31ada4fd-adec-460c-809a-9e56ceb75269", 0},
		{"unsigned jwt", "eyJhbGciOiJub25lIn0.eyJleHAiOjE3MDAwMDAwMDB9.", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tokenExpiry(tt.token)
			if (tt.want == 0) != got.IsZero() || (tt.want != 0 && got.Unix() != tt.want) {
				t.Errorf("tokenExpiry = %v, want unix %d", got, tt.want)
			}
		})
	}
}
