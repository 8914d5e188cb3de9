package spec_test

import (
	"regexp"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// TestAnchorRegex: patterns are anchored as SMI means them, plain ones are
// kept as written (other meshes get the user's regex back), and \Q quoting,
// which would swallow a wrapping group's parenthesis, keeps its meaning.
func TestAnchorRegex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		re         string
		whole      bool
		want       string // "" when only matching is checked
		match, not string
	}{
		{re: "/books", want: "^(?:/books)", match: "/books-bought", not: "/x/books"},
		{re: ".*a-book.*new", want: "^(?:.*a-book.*new)", match: "/buy-a-book/new", not: "/buy"},
		{re: "bookbuyer", whole: true, want: "^(?:bookbuyer)$", match: "bookbuyer", not: "bookbuyer2"},
		{re: `\Qa.b`, match: "a.b/c", not: "axb"},
		{re: `\Q`, match: "/anything"},
		{re: `\Qa)b\E/x`, match: "a)b/x", not: "ab/x"},
		{re: `\Qv1.0`, whole: true, match: "v1.0", not: "v1.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.re, func(t *testing.T) {
			got, err := spec.AnchorRegex(tt.re, tt.whole)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("AnchorRegex(%q) = %q, want %q", tt.re, got, tt.want)
			}
			rx := regexp.MustCompile(got)
			if !rx.MatchString(tt.match) {
				t.Errorf("%q (from %q) does not match %q", got, tt.re, tt.match)
			}
			if tt.not != "" && rx.MatchString(tt.not) {
				t.Errorf("%q (from %q) matches %q", got, tt.re, tt.not)
			}
		})
	}
	if _, err := spec.AnchorRegex("(", false); err == nil {
		t.Error("an unbalanced pattern was accepted")
	}
}
