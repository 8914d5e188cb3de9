package smi

import (
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

func TestHTTPRouteGroup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		yaml    string
		matches []spec.Match // nil: no route expected
		diags   []diag
	}{
		{
			name: "v1alpha1 top-level matches, methods with *",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
matches:
- {name: metrics, pathRegex: /metrics, methods: [GET]}
- {name: all, methods: ["*"]}`,
			matches: []spec.Match{{Name: "metrics", PathRegex: "/metrics", Methods: []string{"GET"}}, {Name: "all", Methods: []string{"*"}}},
		},
		{
			name: "v1alpha2 headers as a map",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
matches:
- name: ff
  headers: {user-agent: ".*Firefox.*", x-beta: "yes"}`,
			matches: []spec.Match{{Name: "ff", Headers: map[string]string{"user-agent": ".*Firefox.*", "x-beta": "yes"}}},
		},
		{
			name: "v1alpha1 headers as a list (the CRD's form) though the SDK type has none",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha1
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
matches:
- name: ff
  headers:
  - user-agent: ".*Firefox.*"`,
			matches: []spec.Match{{Name: "ff", Headers: map[string]string{"user-agent": ".*Firefox.*"}}},
		},
		{
			name: "v1alpha3 headers as a list of single-key maps",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - name: bought
    pathRegex: /books-bought
    headers:
    - user-agent: ".*-http-client/*.*"
    - client-app: bookbuyer`,
			matches: []spec.Match{{Name: "bought", PathRegex: "/books-bought", Headers: map[string]string{"user-agent": ".*-http-client/*.*", "client-app": "bookbuyer"}}},
		},
		{
			name: "v1alpha4 numeric header value is read as a string with a warning",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - name: dbg
    headers: {x-debug: 1}`,
			matches: []spec.Match{{Name: "dbg", Headers: map[string]string{"x-debug": "1"}}},
			diags:   []diag{w("spec.matches[0].headers.x-debug", `header value is a number; read as the regex "1"`)},
		},
		{
			name: "header problems",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - name: a
    headers:
    - x-a: "("
    - X-A: "b"
    - "just a string"
    - x-b: [1]
  - name: b
    headers: "x: y"`,
			diags: []diag{
				e("spec.matches[0].headers[0].x-a", `invalid regex "(": missing closing )`),
				e("spec.matches[0].headers[1].X-A", "already matched at spec.matches[0].headers[0].x-a"),
				e("spec.matches[0].headers[2]", "want a single-key map"),
				e("spec.matches[0].headers[3].x-b", "wrong type: got list"),
				e("spec.matches[1].headers", "want a map of header name to regex, or a list"),
			},
		},
		{
			name: "invalid pathRegex names the SMI field",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - {name: a, pathRegex: /a}
  - {name: b, pathRegex: /b}
  - {name: c, pathRegex: "/c[0-9"}`,
			diags: []diag{e("spec.matches[2].pathRegex", `invalid regex "/c[0-9": missing closing ]: "[0-9"`)},
		},
		{
			name: "v1alpha4 top-level matches: known slip, warning",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
matches:
- {name: m, pathRegex: /metrics, methods: ["*"], bogus: 1}`,
			matches: []spec.Match{{Name: "m", PathRegex: "/metrics", Methods: []string{"*"}}},
			diags: []diag{
				w("matches", "matches belongs under spec in specs.smi-spec.io/v1alpha4 (known slip)"),
				w("matches[0].bogus", `unknown field "bogus"`),
			},
		},
		{
			name: "v1alpha4 matches both at the top level and under spec",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
matches: [{name: a}]
spec:
  matches: [{name: b}]`,
			diags: []diag{e("matches", "given both at the top level and under spec")},
		},
		{
			name: "v1alpha2 with spec.matches reads nothing and says so",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha2
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches: [{name: b}]`,
			matches: []spec.Match{},
			diags:   []diag{w("spec", `unknown field "spec"`)},
		},
		{
			name: "wrong types in a match",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - {name: a, methods: GET}
  - {name: 7}`,
			diags: []diag{
				e("spec.matches[0].methods", "wrong type: got string \"GET\", want list"),
				e("spec.matches[1].name", "wrong type: got number 7, want string"),
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, ds := Translate(objects(t, tc.yaml), Options{})
			checkDiags(t, ds, tc.diags)
			if tc.matches == nil {
				if len(in.Routes) != 0 {
					t.Errorf("route translated despite errors: %+v", in.Routes)
				}
				return
			}
			if len(in.Routes) != 1 {
				t.Fatalf("got %d routes, want 1", len(in.Routes))
			}
			r := in.Routes[0]
			if r.Kind != spec.RouteHTTP || r.Key != (spec.Key{Namespace: "shop", Name: "r"}) {
				t.Errorf("route %s %s", r.Kind, r.Key)
			}
			if len(r.Matches) == 0 && len(tc.matches) == 0 {
				return
			}
			if !reflect.DeepEqual(r.Matches, tc.matches) {
				t.Errorf("matches = %+v\nwant      %+v", r.Matches, tc.matches)
			}
		})
	}
}

// TestRouteErrorsOnce checks that a problem Build also looks for reaches the
// user once, with the SMI field path.
func TestRouteErrorsOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		yaml  string
		diags []diag
	}{
		{
			name:  "invalid pathRegex",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r, namespace: shop}\nspec:\n  matches:\n  - {name: a, pathRegex: '(' }",
			diags: []diag{e("spec.matches[0].pathRegex", "invalid regex")},
		},
		{
			name:  "invalid header regex in list form",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r, namespace: shop}\nspec:\n  matches:\n  - name: a\n    headers: [{x-a: '*'}]",
			diags: []diag{e("spec.matches[0].headers[0].x-a", "invalid regex")},
		},
		{
			name:  "port out of range",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: r, namespace: shop}\nspec:\n  matches:\n    ports: [80, 70000]",
			diags: []diag{e("spec.matches.ports[1]", "port 70000 out of range 1-65535")},
		},
		{
			name:  "unknown method is Build's, with the same path",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r, namespace: shop}\nspec:\n  matches:\n  - {name: a, methods: [FETCH]}",
			diags: []diag{e("spec.matches[0].methods[0]", `unknown HTTP method "FETCH"`)},
		},
		{
			name:  "duplicate route names, across versions, are Build's",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha3\nkind: HTTPRouteGroup\nmetadata: {name: r, namespace: shop}\nspec:\n  matches: [{name: a}]\n---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r, namespace: shop}\nspec:\n  matches: [{name: b}]",
			diags: []diag{w("metadata.name", "duplicate HTTPRouteGroup shop/r: overridden by test.yaml (document 1)")},
		},
		{
			name:  "duplicate match names are Build's, with the same path",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: r, namespace: shop}\nspec:\n  matches:\n  - {name: a}\n  - {name: a}",
			diags: []diag{e("spec.matches[1].name", `duplicate match name "a"`)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, ds := translateAndBuild(t, tc.yaml, nil, false)
			checkDiags(t, ds, tc.diags)
		})
	}
}

func TestL4Routes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		yaml  string
		kind  spec.RouteKind // "" = no route expected
		ports []int32
		diags []diag
	}{
		{name: "TCPRoute v1alpha1 has no fields", yaml: "apiVersion: specs.smi-spec.io/v1alpha1\nkind: TCPRoute\nmetadata: {name: r}", kind: spec.RouteTCP},
		{name: "TCPRoute v1alpha2 has no fields", yaml: "apiVersion: specs.smi-spec.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}", kind: spec.RouteTCP},
		{name: "TCPRoute v1alpha3 empty spec", yaml: "apiVersion: specs.smi-spec.io/v1alpha3\nkind: TCPRoute\nmetadata: {name: r}\nspec: {}", kind: spec.RouteTCP},
		{
			name: "TCPRoute v1alpha3 has no ports yet",
			yaml: "apiVersion: specs.smi-spec.io/v1alpha3\nkind: TCPRoute\nmetadata: {name: r}\nspec: {matches: {ports: [80]}}",
			kind: spec.RouteTCP, diags: []diag{w("spec.matches", `unknown field "matches"`)},
		},
		{name: "TCPRoute v1alpha4 ports", yaml: "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: r}\nspec: {matches: {name: m, ports: [3306, 6446]}}", kind: spec.RouteTCP, ports: []int32{3306, 6446}},
		{name: "TCPRoute v1alpha4 empty ports = all", yaml: "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: r}\nspec: {matches: {ports: []}}", kind: spec.RouteTCP},
		{name: "UDPRoute v1alpha4 ports", yaml: "apiVersion: specs.smi-spec.io/v1alpha4\nkind: UDPRoute\nmetadata: {name: r}\nspec: {matches: {ports: [53]}}", kind: spec.RouteUDP, ports: []int32{53}},
		{
			name:  "UDPRoute v1alpha3 does not exist",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha3\nkind: UDPRoute\nmetadata: {name: r}",
			diags: []diag{e("apiVersion", `unknown version "v1alpha3" of UDPRoute in specs.smi-spec.io (known: v1alpha4)`)},
		},
		{
			name:  "ports given as a list of matches",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: r}\nspec: {matches: [{ports: [80]}]}",
			diags: []diag{e("spec.matches", "wrong type: got list, want object")},
		},
		{
			name:  "port beyond int32",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: r}\nspec: {matches: {ports: [4294967376]}}",
			diags: []diag{e("spec.matches.ports[0]", "port 4294967376 out of range")},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, ds := Translate(objects(t, tc.yaml), Options{})
			checkDiags(t, ds, tc.diags)
			if tc.kind == "" {
				if len(in.Routes) != 0 {
					t.Errorf("route translated despite errors: %+v", in.Routes)
				}
				return
			}
			if len(in.Routes) != 1 {
				t.Fatalf("got %d routes, want 1", len(in.Routes))
			}
			r := in.Routes[0]
			if r.Kind != tc.kind || r.Key != (spec.Key{Namespace: "default", Name: "r"}) || !reflect.DeepEqual(r.Ports, tc.ports) {
				t.Errorf("route = %s %s ports %v, want %s default/r ports %v", r.Kind, r.Key, r.Ports, tc.kind, tc.ports)
			}
		})
	}
}
