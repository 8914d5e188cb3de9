package routecheck

import (
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func snapshot(t *testing.T) *spec.Snapshot {
	t.Helper()
	v1 := HTTPService("bookstore/bookstore-v1", 14001, "127.0.0.1:1")
	v1.Identities = []spiffeid.ID{ID("bookstore", "bookstore-v1")}
	v2 := HTTPService("bookstore/bookstore-v2", 14001, "127.0.0.1:2")
	v2.Identities = []spiffeid.ID{ID("bookstore", "bookstore-v2")}
	mysql := spec.Service{Key: K("db/mysql"), Ports: []spec.Port{{Port: 3306, Protocol: spec.ProtocolTCP}},
		Identities: []spiffeid.ID{ID("db", "mysql")}}
	routes := []spec.Route{
		{Key: K("bookstore/routes"), Kind: spec.RouteHTTP, Matches: []spec.Match{
			{Name: "books", PathRegex: "/books", Methods: []string{"GET"}},
			{Name: "buy", PathRegex: "/buy", Methods: []string{"POST"}},
		}},
		{Key: K("db/mysql"), Kind: spec.RouteTCP},
	}
	policy := func(name, dest string, rules ...spec.AccessRule) spec.AccessPolicy {
		return spec.AccessPolicy{Key: K(name), Destination: ID("bookstore", dest), Sources: []spiffeid.ID{ID("bookbuyer", "bookbuyer")}, Rules: rules}
	}
	books := spec.AccessRule{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: K("bookstore/routes"), Matches: []string{"books"}}}
	in := spec.Input{
		TrustDomain: TrustDomain,
		Services:    []spec.Service{HTTPService("bookstore/bookstore", 14001), v1, v2, mysql},
		Routes:      routes,
		Splits:      []spec.Split{Split("bookstore/split", "bookstore/bookstore", "bookstore/bookstore-v1", 75, "bookstore/bookstore-v2", 25)},
		Policies: []spec.AccessPolicy{
			policy("bookstore/v1", "bookstore-v1", books),
			policy("bookstore/v2", "bookstore-v2", books),
			{Key: K("db/mysql"), Destination: ID("db", "mysql"), Sources: []spiffeid.ID{ID("bookstore", "bookstore-v1")},
				Rules: []spec.AccessRule{{Route: spec.RouteRef{Kind: spec.RouteTCP, Key: K("db/mysql")}}}},
		},
	}
	return MustBuild(in)
}

func TestRun(t *testing.T) {
	t.Parallel()
	file, err := Parse([]byte(`
tests:
- name: split by weight
  service: bookstore.bookstore.svc.cluster.local
  expect: {backends: {bookstore/bookstore-v1: 3, bookstore/bookstore-v2: 1}}
- name: buyer may list books everywhere
  caller: bookbuyer/bookbuyer
  service: bookstore/bookstore
  path: /books-bought
  expect: {access: allow}
- name: buyer may not buy
  caller: spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer
  service: bookstore/bookstore
  method: POST
  path: /buy
  expect: {access: deny}
- name: wrong expectation fails
  service: bookstore/bookstore-v1
  expect: {backend: bookstore/bookstore-v2}
- name: wrong access fails
  caller: bookthief/bookthief
  service: bookstore/bookstore-v1
  path: /books
  expect: {access: allow}
- name: tcp to mysql
  caller: bookstore/bookstore-v1
  service: mysql.db
  expect: {backend: db/mysql, access: allow}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(snapshot(t), file)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // case -> substring of its failure ("" = passes)
		"split by weight":                 "",
		"buyer may list books everywhere": "",
		"buyer may not buy":               "",
		"wrong expectation fails":         "backends {bookstore/bookstore-v1=100%}, want all to bookstore/bookstore-v2",
		"wrong access fails":              "deny at bookstore/bookstore-v1",
		"tcp to mysql":                    "",
	}
	for _, res := range rep.Results {
		w := want[res.Name]
		if w == "" && !res.Passed {
			t.Errorf("%s: failed: %v", res.Name, res.Failures)
		}
		if w != "" && (res.Passed || !strings.Contains(strings.Join(res.Failures, "\n"), w)) {
			t.Errorf("%s: passed=%v failures=%v, want a failure containing %q", res.Name, res.Passed, res.Failures, w)
		}
	}
	if rep.Failed() != 2 {
		t.Errorf("Failed() = %d, want 2", rep.Failed())
	}
	c := rep.Coverage
	// Matches: books hit by access, buy never matched (the POST was denied).
	if c.RouteMatches != (Count{Hit: 1, Total: 2}) {
		t.Errorf("route matches %+v, want 1/2", c.RouteMatches)
	}
	if c.SplitBackends != (Count{Hit: 2, Total: 2}) {
		t.Errorf("split backends %+v, want 2/2", c.SplitBackends)
	}
	if c.AccessRules != (Count{Hit: 3, Total: 3}) {
		t.Errorf("access rules %+v, want 3/3", c.AccessRules)
	}
	if len(c.Missed) != 1 || c.Missed[0] != "route match bookstore/routes#buy" {
		t.Errorf("missed %v", c.Missed)
	}
	if p := c.Percent(); p < 85.7 || p > 85.8 {
		t.Errorf("percent %.2f, want 6/7", p)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"tests: [{service: a/b, expect: {access: allow}}]":                                    "tests[0].name: required",
		"tests: [{name: x, expect: {access: allow}}]":                                         "tests[0] (x).service: required",
		"tests: [{name: x, service: a/b, expect: {}}]":                                        "nothing to check",
		"tests: [{name: x, service: a/b, expect: {access: maybe}}]":                           `"maybe", want allow or deny`,
		"tests: [{name: x, service: a/b, expect: {backend: a/b, backends: {a/b: 1}}}]":        "not both",
		"tests: [{name: x, service: a/b, expect: {access: allow}, wat: 1}]":                   "unknown field",
		"tests: [{name: x, service: a/b, port: http, expect: {access: allow}}]":               "port",
		"tests:\n- name: x\n  service: a/b\n expect: 1":                                       "yaml",
		"tests: [{name: x, service: a/b, headers: {a: [1]}, expect: {access: allow}}]":        "headers",
		"tests: [{name: x, service: a/b, expect: {backends: {a/b: ten}, access: allow}}]":     "backends",
		"tests: [{name: x, service: a/b, expect: {backend: a/b}}, {name: why, service: c/d}]": "tests[1] (why).expect",
	}
	for in, want := range cases {
		t.Run(want, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(in))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Parse(%q) = %v, want error containing %q", in, err, want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("tests: [{name: x, service: a/b, expect: {access: allow}}]"))
	f.Add([]byte("tests:\n- name: y\n  service: bookstore.bookstore\n  headers: {a: b}\n  expect: {backends: {a/b: 1}}\n"))
	snap := MustBuild(spec.Input{Services: []spec.Service{HTTPService("a/b", 80)}})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		// Anything Parse accepts runs without panicking and reports every case.
		rep, err := Run(snap, file)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != len(file.Tests) {
			t.Fatalf("%d results for %d cases", len(rep.Results), len(file.Tests))
		}
	})
}
