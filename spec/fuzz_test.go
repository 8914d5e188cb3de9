package spec_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// FuzzMatch feeds arbitrary regexes and requests through Build, Compile and
// the routing table. Properties: nothing panics; a pattern Build accepts is
// one Prepare accepts; a literal path pattern matches exactly the paths it
// prefixes (SMI anchors pathRegex at the start only).
func FuzzMatch(f *testing.F) {
	f.Add("/books", "client-app", "bookbuyer", "GET", "/books-bought", "bookbuyer")
	f.Add(".*a-book.*new", "user-agent", ".*-http-client/*.*", "POST", "/buy-a-book/new", "go-http-client/1.1")
	f.Add("(", "x", "[", "GET", "/", "")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, pathRe, header, headerRe, method, path, headerVal string) {
		in := spec.Input{
			Services: []spec.Service{HTTPService("ns/svc", 80), HTTPService("ns/b", 80)},
			Routes: []spec.Route{{Key: K("ns/r"), Kind: spec.RouteHTTP, Matches: []spec.Match{
				{Name: "m", PathRegex: pathRe, Methods: []string{method}, Headers: map[string]string{header: headerRe}},
			}}},
			Splits: []spec.Split{{Key: K("ns/s"), Root: K("ns/svc"), Backends: []spec.Backend{{Service: K("ns/b"), Weight: 1}},
				Matches: []spec.RouteRef{{Kind: spec.RouteHTTP, Key: K("ns/r")}}}},
		}
		s, diags := spec.Build(in, spec.BuildOptions{})
		tbl, err := spec.Compile(s, spec.Node{ID: "n"}).Prepare()
		if err != nil {
			t.Fatalf("Prepare failed on a snapshot Build returned (diags %v): %v", diags, err)
		}
		h := http.Header{}
		h.Set(header, headerVal)
		d, ok := tbl.RouteHTTP(K("ns/svc"), &spec.Request{Method: method, Path: path, Header: h})
		if !ok {
			t.Fatal("root service has no upstream")
		}
		if diags.HasErrors() {
			return
		}
		// Literal pattern, no header condition: matching must be a prefix
		// test. Only for valid UTF-8: Go's regexp reads each invalid byte of
		// a path as U+FFFD, so "\ufffd" matches "\xda" (see Match.PathRegex).
		if !utf8.ValidString(pathRe) || !utf8.ValidString(path) {
			return
		}
		lit := regexp.QuoteMeta(pathRe)
		in.Routes[0].Matches[0] = spec.Match{Name: "m", PathRegex: lit}
		tbl2, err := spec.Compile(mustBuild(t, in), spec.Node{ID: "n"}).Prepare()
		if err != nil {
			t.Fatal(err)
		}
		d, _ = tbl2.RouteHTTP(K("ns/svc"), &spec.Request{Method: "GET", Path: path})
		if got, want := d.Route == 0, strings.HasPrefix(path, pathRe); got != want {
			t.Fatalf("literal %q on path %q: matched=%v, want %v", pathRe, path, got, want)
		}
	})
}

func mustBuild(t *testing.T, in spec.Input) *spec.Snapshot {
	t.Helper()
	s, diags := spec.Build(in, spec.BuildOptions{})
	if err := diags.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}
