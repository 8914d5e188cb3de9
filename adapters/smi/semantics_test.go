package smi

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// These tests follow translated SMI through Build, Compile and the decision
// code the proxy uses, to show the translation keeps SMI's meaning: deny by
// default, AND inside a match and OR across matches, `*` methods, header
// regexes, pathRegex anchored at the start, unmatched requests to the root.

func table(t *testing.T, src string, svcs []spec.Service, node spec.Node) *spec.Table {
	t.Helper()
	snap, ds := translateAndBuild(t, src, svcs, false)
	if ds.HasErrors() {
		t.Fatalf("build: %v", ds.Err())
	}
	tbl, err := spec.Compile(snap, node).Prepare()
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func identity(t *testing.T, ns, sa string) spec.Node {
	t.Helper()
	id, err := spec.Identity("cluster.local", ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return spec.Node{ID: sa, Identity: id}
}

func TestAccessSemantics(t *testing.T) {
	t.Parallel()
	root := examples(t)
	var src string
	for _, f := range []string{"bookstore-httproutegroups.yaml", "bookstore-traffictargets.yaml"} {
		data, err := os.ReadFile(filepath.Join(root, "osm-demo", f))
		if err != nil {
			t.Fatal(err)
		}
		src += string(data) + "\n---\n"
	}
	tbl := table(t, src, nil, identity(t, "bookstore", "bookstore-v1"))
	buyer := identity(t, "bookbuyer", "bookbuyer").Identity
	thief := identity(t, "bookthief", "bookthief").Identity
	client := http.Header{"User-Agent": {"Go-http-client/1.1"}, "Client-App": {"bookbuyer"}}
	cases := []struct {
		name    string
		caller  spec.Node
		method  string
		path    string
		header  http.Header
		allowed bool
	}{
		{"both headers, path and method hold (AND)", spec.Node{Identity: buyer}, "GET", "/books-bought", client, true},
		{"pathRegex is anchored at the start only", spec.Node{Identity: buyer}, "GET", "/books-bought/today", client, true},
		{"one header missing", spec.Node{Identity: buyer}, "GET", "/books-bought", http.Header{"User-Agent": {"Go-http-client/1.1"}}, false},
		{"wrong method", spec.Node{Identity: buyer}, "POST", "/books-bought", client, false},
		{"path not at the start", spec.Node{Identity: buyer}, "GET", "/x/books-bought", client, false},
		{"another match of the rule (OR)", spec.Node{Identity: buyer}, "GET", "/buy-a-book/new", nil, true},
		{"a match the rule does not name", spec.Node{Identity: buyer}, "POST", "/update-books-bought", nil, false},
		{"a source no TrafficTarget names: denied by default", spec.Node{Identity: thief}, "GET", "/buy-a-book/new", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := tbl.Authorize(tc.caller.Identity, spec.RouteHTTP, 14001, &spec.Request{Method: tc.method, Path: tc.path, Header: tc.header})
			if d.Allowed != tc.allowed {
				t.Errorf("allowed = %v (%s), want %v", d.Allowed, d.Reason, tc.allowed)
			}
		})
	}
}

func TestSplitSemantics(t *testing.T) {
	t.Parallel()
	src := `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: ab}]
  backends:
  - {service: web-v1, weight: 0}
  - {service: web-v2, weight: 100}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: ab, namespace: shop}
spec:
  matches:
  - name: firefox-users
    headers: {user-agent: ".*Firefox.*"}
  - name: beta-api
    methods: ["*"]
    pathRegex: /api/beta`
	tbl := table(t, src, services("shop", []int32{80}, "web", "web-v1", "web-v2"), spec.Node{ID: "caller"})
	web := spec.Key{Namespace: "shop", Name: "web"}
	cases := []struct {
		name   string
		method string
		path   string
		header http.Header
		want   spec.Key
	}{
		{"matching header goes to the split", "GET", "/", http.Header{"User-Agent": {"Mozilla/5.0 Firefox/120"}}, spec.Key{Namespace: "shop", Name: "web-v2"}},
		{"* method and path of the other match (OR)", "DELETE", "/api/beta/x", nil, spec.Key{Namespace: "shop", Name: "web-v2"}},
		{"unmatched requests go to the root", "GET", "/", http.Header{"User-Agent": {"curl/8"}}, web},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, ok := tbl.RouteHTTP(web, &spec.Request{Method: tc.method, Path: tc.path, Header: tc.header})
			if !ok {
				t.Fatal("no upstream for shop/web")
			}
			var got []spec.Key
			for _, b := range d.Backends {
				if b.Weight > 0 {
					got = append(got, b.Service)
				}
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("backends with weight = %v, want [%v]", got, tc.want)
			}
		})
	}
}
