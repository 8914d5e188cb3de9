package gatewayapi

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/causeway-mesh/causeway/spec"
)

func TestPathForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		re     string
		want   []Form
		wantOK bool
	}{
		{"", []Form{{}}, true},
		{".*", []Form{{}}, true},
		{"^/books", []Form{{Value: "/books"}}, true},
		{"/books", []Form{{Value: "/books"}}, true},
		{"/books$", []Form{{Value: "/books", Exact: true}}, true},
		{"/books/.*", []Form{{Value: "/books/"}}, true},
		{"/books.*$", []Form{{Value: "/books"}}, true},
		{"/(a|b)/x", []Form{{Value: "/a/x"}, {Value: "/b/x"}}, true},
		{"/v[12]$", []Form{{Value: "/v1", Exact: true}, {Value: "/v2", Exact: true}}, true},
		{"/a|.*", []Form{{}}, true}, // one branch matches everything
		{"/x?y", []Form{{Value: "/xy"}, {Value: "/y"}}, true},
		{"/api/v1.0", nil, false},     // "." is any character
		{".*a-book.*new", nil, false}, // a substring, not a prefix
		{"/v[0-9]+", nil, false},      // unbounded repetition
		{"(?i)/books", nil, false},    // case folding
		{"/a.*b", nil, false},         // text after ".*"
		{"[", nil, false},             // not a regex
		{"/[a-z]x", nil, false},       // 26 forms: within the bound? no: 26 < 32 ...
	}
	// The last case is within maxForms, so it reduces; fix its expectation
	// from the class rather than spelling 26 forms.
	last := &tests[len(tests)-1]
	last.wantOK = true
	for c := 'a'; c <= 'z'; c++ {
		last.want = append(last.want, Form{Value: "/" + string(c) + "x"})
	}
	for _, tc := range tests {
		t.Run(tc.re, func(t *testing.T) {
			t.Parallel()
			got, ok := PathForms(tc.re)
			if ok != tc.wantOK || (ok && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("PathForms(%q) = %v, %v; want %v, %v", tc.re, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestHeaderForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		re     string
		want   []Form
		wantOK bool
	}{
		{"true", []Form{{Value: "true", Exact: true}}, true},
		{"abc.*", []Form{{Value: "abc"}}, true},
		{".*abc", []Form{{Value: "abc", Suffix: true}}, true},
		{".*", []Form{{}}, true},
		{"a|b", []Form{{Value: "a", Exact: true}, {Value: "b", Exact: true}}, true},
		{"[0-9]+", nil, false},
		{".*-http-client/*.*", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.re, func(t *testing.T) {
			t.Parallel()
			got, ok := HeaderForms(tc.re)
			if ok != tc.wantOK || (ok && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("HeaderForms(%q) = %v, %v; want %v, %v", tc.re, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// FuzzPathForms checks the reduction against the regex itself: whenever
// PathForms says a pathRegex is a list of exact and prefix strings, a path
// matches the regex anchored at the start (SMI) exactly when it matches one
// of the forms. Renderings that rely on PathForms (Istio's authorization
// paths, exact matches) are then as strict as the SMI match, no more and
// no less.
func FuzzPathForms(f *testing.F) {
	for _, s := range [][2]string{{"/books", "/books-bought"}, {"/books$", "/books"}, {"/(a|b)/x", "/b/xy"}, {"/v[12]$", "/v3"}, {".*", ""}, {"/x?y", "/y"}, {"^/a.*$", "/a/b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, re, path string) {
		if !utf8.ValidString(re) || !utf8.ValidString(path) || strings.Contains(path, "\n") {
			return // "." excludes newlines; paths have none
		}
		forms, ok := PathForms(re)
		if !ok {
			return
		}
		anchored, err := spec.AnchorRegex(re, false)
		if err != nil {
			t.Fatalf("PathForms accepted %q, which does not parse: %v", re, err)
		}
		want := regexp.MustCompile(anchored).MatchString(path)
		got := false
		for _, f := range forms {
			if (f.Exact && path == f.Value) || (!f.Exact && strings.HasPrefix(path, f.Value)) {
				got = true
			}
		}
		if got != want {
			t.Errorf("pathRegex %q, path %q: regex says %v, forms %v say %v", re, path, want, forms, got)
		}
	})
}

// FuzzHeaderForms is FuzzPathForms for header regexes, which must match the
// whole value.
func FuzzHeaderForms(f *testing.F) {
	for _, s := range [][2]string{{"abc.*", "abcd"}, {".*abc", "xabc"}, {"a|b", "b"}, {"true", "true "}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, re, value string) {
		if !utf8.ValidString(re) || !utf8.ValidString(value) || strings.Contains(value, "\n") {
			return
		}
		forms, ok := HeaderForms(re)
		if !ok {
			return
		}
		anchored, err := spec.AnchorRegex(re, true)
		if err != nil {
			t.Fatalf("HeaderForms accepted %q, which does not parse: %v", re, err)
		}
		want := regexp.MustCompile(anchored).MatchString(value)
		got := false
		for _, f := range forms {
			switch {
			case f.Exact:
				got = got || value == f.Value
			case f.Suffix:
				got = got || strings.HasSuffix(value, f.Value)
			default:
				got = got || strings.HasPrefix(value, f.Value)
			}
		}
		if got != want {
			t.Errorf("header regex %q, value %q: regex says %v, forms %v say %v", re, value, want, forms, got)
		}
	})
}

func TestHeaderName(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{"x-canary": true, "User-Agent": true, "a.b_c~": true, "has space": false, "colon:": false, "": false} {
		if headerName.MatchString(name) != ok {
			t.Errorf("header name %q: accepted=%v, want %v", name, !ok, ok)
		}
	}
}

func TestPathMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		re   string
		want map[string]any
	}{
		{"", nil},
		{".*", nil},
		{"/books", map[string]any{"type": "RegularExpression", "value": "^/books.*"}},
		{"/books.json", map[string]any{"type": "RegularExpression", "value": "^(?:/books.json).*"}},
		{"/health$", map[string]any{"type": "Exact", "value": "/health"}},
		{"/a//b$", map[string]any{"type": "RegularExpression", "value": "^(?:/a//b$).*"}},
		{"/a#b$", map[string]any{"type": "RegularExpression", "value": "^(?:/a#b$).*"}},
		{"health$", map[string]any{"type": "RegularExpression", "value": "^(?:health$).*"}},
	}
	for _, tc := range tests {
		t.Run(tc.re, func(t *testing.T) {
			t.Parallel()
			if got := PathMatch(tc.re); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("PathMatch(%q) = %v, want %v", tc.re, got, tc.want)
			}
		})
	}
}
