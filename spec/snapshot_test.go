package spec_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func bookstore() spec.Input {
	v1 := HTTPService("bookstore/bookstore-v1", 14001, "127.0.0.1:15101")
	v1.Identities = []spiffeid.ID{ID("bookstore", "bookstore-v1")}
	v2 := HTTPService("bookstore/bookstore-v2", 14001, "127.0.0.1:15102")
	v2.Identities = []spiffeid.ID{ID("bookstore", "bookstore-v2")}
	root := HTTPService("bookstore/bookstore", 14001)
	mysql := spec.Service{Key: K("db/mysql"), Ports: []spec.Port{{Name: "mysql", Port: 3306, Protocol: spec.ProtocolTCP}}}
	routes := []spec.Route{
		{Key: K("bookstore/routes"), Kind: spec.RouteHTTP, Matches: []spec.Match{
			{Name: "books", PathRegex: "/books", Methods: []string{"GET"}},
			{Name: "buy", PathRegex: ".*a-book.*new", Methods: []string{"*"}, Headers: map[string]string{"client-app": "bookbuyer"}},
		}},
		{Key: K("db/mysql"), Kind: spec.RouteTCP, Ports: []int32{3306}},
	}
	return spec.Input{
		TrustDomain: TrustDomain,
		Services:    []spec.Service{v1, v2, root, mysql},
		Routes:      routes,
		Splits:      []spec.Split{Split("bookstore/split", "bookstore/bookstore", "bookstore/bookstore-v1", 90, "bookstore/bookstore-v2", 10)},
		Policies: []spec.AccessPolicy{{
			Key: K("bookstore/buyer"), Destination: ID("bookstore", "bookstore-v1"),
			Sources: []spiffeid.ID{ID("bookbuyer", "bookbuyer")},
			Rules:   []spec.AccessRule{{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: K("bookstore/routes"), Matches: []string{"books"}}}},
		}},
	}
}

func shuffled(in spec.Input, r *rand.Rand) spec.Input {
	out := in
	out.Services = slices.Clone(in.Services)
	out.Routes = slices.Clone(in.Routes)
	out.Splits = slices.Clone(in.Splits)
	out.Policies = slices.Clone(in.Policies)
	r.Shuffle(len(out.Services), func(i, j int) { out.Services[i], out.Services[j] = out.Services[j], out.Services[i] })
	r.Shuffle(len(out.Routes), func(i, j int) { out.Routes[i], out.Routes[j] = out.Routes[j], out.Routes[i] })
	for i := range out.Services {
		eps := slices.Clone(out.Services[i].Endpoints)
		r.Shuffle(len(eps), func(a, b int) { eps[a], eps[b] = eps[b], eps[a] })
		out.Services[i].Endpoints = eps
	}
	return out
}

func TestBuildDeterministic(t *testing.T) {
	t.Parallel()
	in := bookstore()
	in.Services[0].Endpoints = append(in.Services[0].Endpoints, Endpoint("127.0.0.2:15101"), Endpoint("127.0.0.3:15101"))
	want, diags := spec.Build(in, spec.BuildOptions{})
	if diags.HasErrors() {
		t.Fatalf("Build: %v", diags.Err())
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 50 {
		got, _ := spec.Build(shuffled(in, r), spec.BuildOptions{})
		if !bytes.Equal(got.JSON(), want.JSON()) {
			t.Fatalf("shuffle %d: snapshot bytes differ:\n%s\nwant:\n%s", i, got.JSON(), want.JSON())
		}
		if got.Version != want.Version {
			t.Fatalf("shuffle %d: version %s, want %s", i, got.Version, want.Version)
		}
	}
	// A real change must change the version.
	in.Splits[0].Backends[0].Weight = 80_000
	changed, _ := spec.Build(in, spec.BuildOptions{})
	if changed.Version == want.Version {
		t.Fatal("changing a weight kept the same version")
	}
}

func TestBuildDiagnostics(t *testing.T) {
	t.Parallel()
	origin := func(kind, nsName string) spec.Origin {
		k := K(nsName)
		return spec.Origin{Source: spec.Source{File: "f.yaml"}, Object: spec.Object{Kind: kind, Namespace: k.Namespace, Name: k.Name}}
	}
	cases := []struct {
		name    string
		mutate  func(*spec.Input)
		strict  bool
		want    string // substring of the rendered diagnostic
		isError bool
	}{
		{"negative weight", func(in *spec.Input) {
			in.Splits[0].Backends[1].Weight = -5000
			in.Splits[0].Origin = origin("TrafficSplit", "bookstore/split")
		}, false, "f.yaml: TrafficSplit bookstore/split: spec.backends[1].weight: must be >= 0, got -5", true},
		{"all zero weights", func(in *spec.Input) {
			in.Splits[0].Backends[0].Weight, in.Splits[0].Backends[1].Weight = 0, 0
		}, false, "spec.backends: all backend weights are zero", true},
		{"missing backend warns", func(in *spec.Input) {
			in.Splits[0].Backends[1].Service = K("bookstore/bookstore-v9")
		}, false, "spec.backends[1].service: warning: backend service bookstore/bookstore-v9 not found", false},
		{"missing backend is an error when strict", func(in *spec.Input) {
			in.Splits[0].Backends[1].Service = K("bookstore/bookstore-v9")
		}, true, "spec.backends[1].service: backend service bookstore/bookstore-v9 not found", true},
		{"backend lacking root port", func(in *spec.Input) {
			in.Services[1].Ports[0].Port = 8080
		}, false, "backend bookstore/bookstore-v2 lacks root service port(s) [14001]; backend dropped", false},
		{"self reference", func(in *spec.Input) {
			in.Splits[0].Backends[1].Service = K("bookstore/bookstore")
		}, false, "backend is the root service itself", false},
		{"nested split", func(in *spec.Input) {
			in.Splits = append(in.Splits, Split("bookstore/inner", "bookstore/bookstore-v1", "bookstore/bookstore-v2", 1))
		}, false, "is itself split; nested splits are not followed", false},
		{"two unmatched splits of one root", func(in *spec.Input) {
			in.Splits = append(in.Splits, Split("bookstore/zzz", "bookstore/bookstore", "bookstore/bookstore-v2", 1))
		}, false, "is already split by bookstore/split", true},
		{"bad path regex", func(in *spec.Input) {
			in.Routes[0].Matches[0].PathRegex = "/books(["
			in.Routes[0].Origin = origin("HTTPRouteGroup", "bookstore/routes")
		}, false, "HTTPRouteGroup bookstore/routes: spec.matches[0].pathRegex: invalid regex", true},
		{"bad header regex", func(in *spec.Input) {
			in.Routes[0].Matches[1].Headers["client-app"] = "*x"
		}, false, "spec.matches[1].headers.client-app: invalid regex", true},
		{"unknown method", func(in *spec.Input) {
			in.Routes[0].Matches[0].Methods = []string{"FETCH"}
		}, false, `spec.matches[0].methods[0]: unknown HTTP method "FETCH"`, true},
		{"duplicate service", func(in *spec.Input) {
			in.Services = append(in.Services, in.Services[0])
		}, false, "duplicate Service bookstore/bookstore-v1", true},
		{"port out of range", func(in *spec.Input) {
			in.Services[3].Ports[0].Port = 70000
		}, false, "spec.ports[0].port: port 70000 out of range", true},
		{"unknown protocol", func(in *spec.Input) {
			in.Services[3].Ports[0].Protocol = "sctp"
		}, false, `spec.ports[0].protocol: unknown protocol "sctp"`, true},
		{"policy to missing route", func(in *spec.Input) {
			in.Policies[0].Rules[0].Route.Key = K("bookstore/nope")
		}, false, "spec.rules[0]: warning: http route bookstore/nope not found", false},
		{"policy to missing match", func(in *spec.Input) {
			in.Policies[0].Rules[0].Route.Matches = []string{"nope"}
		}, false, `spec.rules[0].matches[0]: warning: match "nope" not found`, false},
		{"policy without sources", func(in *spec.Input) {
			in.Policies[0].Sources = nil
		}, false, "no sources: this TrafficTarget allows nobody", false},
		{"unknown mode", func(in *spec.Input) { in.Mode = "lax" }, false, `unknown mode "lax"`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := bookstore()
			tc.mutate(&in)
			s, diags := spec.Build(in, spec.BuildOptions{Strict: tc.strict})
			var found *spec.Diagnostic
			for i := range diags {
				if strings.Contains(diags[i].String(), tc.want) {
					found = &diags[i]
				}
			}
			if found == nil {
				t.Fatalf("no diagnostic containing %q; got:\n%v", tc.want, diags)
			}
			if got := found.Severity == spec.SeverityError; got != tc.isError {
				t.Errorf("severity %s, want error=%v", found.Severity, tc.isError)
			}
			if diags.HasErrors() != tc.isError {
				t.Errorf("HasErrors=%v, want %v: %v", diags.HasErrors(), tc.isError, diags)
			}
			// Whatever the input, the snapshot is consistent: every reference resolves.
			assertConsistent(t, s)
		})
	}
}

func assertConsistent(t *testing.T, s *spec.Snapshot) {
	t.Helper()
	routes := map[string]bool{}
	for _, r := range s.Routes {
		routes[string(r.Kind)+r.Key.String()] = true
	}
	for _, sp := range s.Splits {
		if s.Service(sp.Root) == nil {
			t.Errorf("split %s: root %s missing", sp.Key, sp.Root)
		}
		for _, b := range sp.Backends {
			if s.Service(b.Service) == nil {
				t.Errorf("split %s: backend %s missing", sp.Key, b.Service)
			}
		}
		for _, m := range sp.Matches {
			if !routes[string(m.Kind)+m.Key.String()] {
				t.Errorf("split %s: route %s missing", sp.Key, m.Key)
			}
		}
	}
	for _, p := range s.Policies {
		for _, r := range p.Rules {
			if !routes[string(r.Route.Kind)+r.Route.Key.String()] {
				t.Errorf("policy %s: route %s missing", p.Key, r.Route.Key)
			}
		}
	}
}

func TestFormatWeight(t *testing.T) {
	t.Parallel()
	for w, want := range map[int64]string{0: "0", 1000: "1", 500: "0.5", 1500: "1.5", -500: "-0.5", 90_000: "90", 1: "0.001"} {
		if got := spec.FormatWeight(w); got != want {
			t.Errorf("FormatWeight(%d) = %q, want %q", w, got, want)
		}
	}
}

func TestCompileOnlyWhatNodeNeeds(t *testing.T) {
	t.Parallel()
	s := MustBuild(bookstore())
	v1 := spec.Node{ID: "v1", Identity: ID("bookstore", "bookstore-v1"), Services: []spec.Key{K("bookstore/bookstore-v1")}}
	v2 := spec.Node{ID: "v2", Identity: ID("bookstore", "bookstore-v2"), Services: []spec.Key{K("bookstore/bookstore-v2")}}
	c1, c2 := spec.Compile(s, v1), spec.Compile(s, v2)
	if len(c1.Inbound.Policies) != 1 || c1.Inbound.Policies[0].Key != K("bookstore/buyer") {
		t.Fatalf("v1 inbound policies = %+v, want bookstore/buyer", c1.Inbound.Policies)
	}
	if len(c1.Inbound.Policies[0].Rules[0].Matches) != 1 || c1.Inbound.Policies[0].Rules[0].Matches[0].Name != "books" {
		t.Errorf("v1 rule matches = %+v, want only 'books'", c1.Inbound.Policies[0].Rules[0].Matches)
	}
	if len(c2.Inbound.Policies) != 0 {
		t.Errorf("v2 got policies of another identity: %+v", c2.Inbound.Policies)
	}
	// A change that only concerns v1's inbound side leaves v2's config as is.
	in := bookstore()
	in.Policies[0].Sources = append(in.Policies[0].Sources, ID("x", "y"))
	s2 := MustBuild(in)
	if spec.Compile(s2, v2).Version != c2.Version {
		t.Error("v2's config version changed for a policy that is not v2's")
	}
	if spec.Compile(s2, v1).Version == c1.Version {
		t.Error("v1's config version did not change when its policy did")
	}
	// Exported services only, for a node of another cluster.
	remote := spec.Compile(s, spec.Node{ID: "r", Cluster: "east"})
	if len(remote.Upstreams) != 0 {
		t.Errorf("remote node sees %d unexported upstreams", len(remote.Upstreams))
	}
}

// TestCompileBackedByAddress: a node that reports its addresses backs every
// service with an endpoint there proving its identity, besides those it
// names, and nothing whose endpoint at that address is someone else's.
func TestCompileBackedByAddress(t *testing.T) {
	t.Parallel()
	in := bookstore()
	for i := range in.Services {
		switch in.Services[i].Key {
		case K("bookstore/bookstore-v1"):
			in.Services[i].Endpoints = []spec.Endpoint{{Addr: "10.1.0.5", Port: 14001, Ready: true, Identity: ID("bookstore", "bookstore-v1")}}
		case K("bookstore/bookstore"):
			// The root service selects the same pod.
			in.Services[i].Endpoints = []spec.Endpoint{{Addr: "10.1.0.5", Port: 14001, Ready: true, Identity: ID("bookstore", "bookstore-v1")}}
		case K("bookstore/bookstore-v2"):
			// Same address, another identity: not this node's.
			in.Services[i].Endpoints = []spec.Endpoint{{Addr: "10.1.0.5", Port: 14001, Ready: true, Identity: ID("bookstore", "bookstore-v2")}}
		}
	}
	s := MustBuild(in)
	tests := []struct {
		name string
		node spec.Node
		want []spec.Key
	}{
		{"named only", spec.Node{ID: "a", Identity: ID("bookstore", "bookstore-v1"), Services: []spec.Key{K("bookstore/bookstore-v1")}},
			[]spec.Key{K("bookstore/bookstore-v1")}},
		{"by address", spec.Node{ID: "b", Identity: ID("bookstore", "bookstore-v1"), Addresses: []string{"10.1.0.5"}},
			[]spec.Key{K("bookstore/bookstore"), K("bookstore/bookstore-v1")}},
		{"named and by address, once each", spec.Node{ID: "c", Identity: ID("bookstore", "bookstore-v1"), Addresses: []string{"10.1.0.5"},
			Services: []spec.Key{K("bookstore/bookstore-v1")}}, []spec.Key{K("bookstore/bookstore"), K("bookstore/bookstore-v1")}},
		{"other address", spec.Node{ID: "d", Identity: ID("bookstore", "bookstore-v1"), Addresses: []string{"10.1.0.6"}}, nil},
		{"no identity", spec.Node{ID: "e", Addresses: []string{"10.1.0.5"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := spec.Compile(s, tt.node)
			if !slices.Equal(c.Node.Services, tt.want) {
				t.Fatalf("backed services = %v, want %v", c.Node.Services, tt.want)
			}
			var inbound []spec.Key
			for _, is := range c.Inbound.Services {
				inbound = append(inbound, is.Key)
			}
			if !slices.Equal(inbound, tt.want) {
				t.Fatalf("inbound services = %v, want %v", inbound, tt.want)
			}
		})
	}
}

func TestTableRouting(t *testing.T) {
	t.Parallel()
	in := bookstore()
	// A header-matched canary: requests from bookbuyer with the buy match go to v2 only.
	in.Splits = append(in.Splits, spec.Split{
		Key: K("bookstore/canary"), Root: K("bookstore/bookstore"),
		Backends: []spec.Backend{{Service: K("bookstore/bookstore-v2"), Weight: 1000}},
		Matches:  []spec.RouteRef{{Kind: spec.RouteHTTP, Key: K("bookstore/routes"), Matches: []string{"buy"}}},
	})
	tbl := Table(in, spec.Node{ID: "client"})
	root, ok := tbl.Resolve("bookstore.bookstore.svc.cluster.local.")
	if !ok || root != K("bookstore/bookstore") {
		t.Fatalf("Resolve = %v %v", root, ok)
	}
	cases := []struct {
		name, method, path string
		header             http.Header
		want               []string
		match              string
	}{
		{"unmatched goes to the unmatched split", "GET", "/other", nil, []string{"bookstore/bookstore-v1", "bookstore/bookstore-v2"}, ""},
		{"header and path match", "POST", "/buy-a-book/new", http.Header{"Client-App": {"bookbuyer"}}, []string{"bookstore/bookstore-v2"}, "buy"},
		{"header must match whole value", "POST", "/buy-a-book/new", http.Header{"Client-App": {"bookbuyer2"}}, []string{"bookstore/bookstore-v1", "bookstore/bookstore-v2"}, ""},
		{"missing header", "POST", "/buy-a-book/new", nil, []string{"bookstore/bookstore-v1", "bookstore/bookstore-v2"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := tbl.RouteHTTP(root, &spec.Request{Method: tc.method, Path: tc.path, Header: tc.header})
			if !ok {
				t.Fatal("no upstream")
			}
			var got []string
			for _, b := range d.Backends {
				got = append(got, b.Service.String())
			}
			if !slices.Equal(got, tc.want) || d.Match != tc.match {
				t.Errorf("backends %v match %q, want %v %q", got, d.Match, tc.want, tc.match)
			}
		})
	}
	// No split: a service routes to itself.
	d, _ := tbl.RouteHTTP(K("bookstore/bookstore-v1"), &spec.Request{Method: "GET", Path: "/"})
	if len(d.Backends) != 1 || d.Backends[0].Service != K("bookstore/bookstore-v1") || d.Route != -1 {
		t.Errorf("unsplit service routes to %+v", d)
	}
	if _, ok := tbl.RouteHTTP(K("nope/nope"), &spec.Request{}); ok {
		t.Error("unknown service routed")
	}
}

func TestTableAuthorize(t *testing.T) {
	t.Parallel()
	in := bookstore()
	in.Policies = append(in.Policies, spec.AccessPolicy{
		Key: K("db/mysql"), Destination: ID("bookstore", "bookstore-v1"), Sources: []spiffeid.ID{ID("bookstore", "bookstore-v2")},
		Rules: []spec.AccessRule{{Route: spec.RouteRef{Kind: spec.RouteTCP, Key: K("db/mysql")}}},
	})
	tbl := Table(in, spec.Node{ID: "v1", Identity: ID("bookstore", "bookstore-v1")})
	buyer, thief, v2 := ID("bookbuyer", "bookbuyer"), ID("bookthief", "bookthief"), ID("bookstore", "bookstore-v2")
	cases := []struct {
		name   string
		caller spiffeid.ID
		kind   spec.RouteKind
		port   int32
		req    *spec.Request
		allow  bool
		reason string
	}{
		{"allowed path and method", buyer, spec.RouteHTTP, 14001, &spec.Request{Method: "GET", Path: "/books-bought"}, true, "allowed"},
		{"path anchored at start", buyer, spec.RouteHTTP, 14001, &spec.Request{Method: "GET", Path: "/x/books"}, false, "no TrafficTarget allows"},
		{"denied method", buyer, spec.RouteHTTP, 14001, &spec.Request{Method: "POST", Path: "/books"}, false, "no TrafficTarget allows"},
		{"match not in rule's subset", buyer, spec.RouteHTTP, 14001, &spec.Request{Method: "POST", Path: "/buy-a-book/new", Header: http.Header{"Client-App": {"bookbuyer"}}}, false, "no TrafficTarget"},
		{"unknown caller", thief, spec.RouteHTTP, 14001, &spec.Request{Method: "GET", Path: "/books"}, false, "bookthief"},
		{"no identity", spiffeid.ID{}, spec.RouteHTTP, 14001, &spec.Request{Method: "GET", Path: "/books"}, false, "no verified identity"},
		{"tcp rule on its port", v2, spec.RouteTCP, 3306, nil, true, "allowed"},
		{"tcp rule on another port", v2, spec.RouteTCP, 3307, nil, false, "no TrafficTarget"},
		{"tcp rule opens http on its port", v2, spec.RouteHTTP, 3306, &spec.Request{Method: "GET", Path: "/"}, true, "allowed"},
		{"http rule does not open tcp", buyer, spec.RouteTCP, 14001, nil, false, "no TrafficTarget"},
		{"tcp rule does not open udp", v2, spec.RouteUDP, 3306, nil, false, "no TrafficTarget"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := tbl.Authorize(tc.caller, tc.kind, tc.port, tc.req)
			if d.Allowed != tc.allow || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("Authorize = %+v, want allowed=%v reason~%q", d, tc.allow, tc.reason)
			}
		})
	}
	in.Mode = spec.ModePermissive
	perm := Table(in, spec.Node{ID: "v1", Identity: ID("bookstore", "bookstore-v1")})
	if d := perm.Authorize(thief, spec.RouteHTTP, 14001, &spec.Request{Method: "DELETE", Path: "/"}); !d.Allowed {
		t.Errorf("permissive mode denied: %+v", d)
	}
}

func TestDuplicatesLaterSourceWins(t *testing.T) {
	t.Parallel()
	target := func(file string, doc int, source string) spec.AccessPolicy {
		return spec.AccessPolicy{
			Key: K("bookwarehouse/access"), Destination: ID("bookwarehouse", "bookwarehouse"),
			Sources: []spiffeid.ID{ID("bookstore", source)},
			Rules:   []spec.AccessRule{{Route: spec.RouteRef{Kind: spec.RouteTCP, Key: K("db/mysql")}}},
			Origin: spec.Origin{Source: spec.Source{File: file, Document: doc},
				Object: spec.Object{Kind: "TrafficTarget", Namespace: "bookwarehouse", Name: "access"}},
		}
	}
	base := bookstore()
	a, b := target("a.yaml", 3, "bookstore-v1"), target("b.yaml", 0, "bookstore")
	for _, order := range [][]spec.AccessPolicy{{a, b}, {b, a}} {
		in := base
		in.Policies = order
		s, diags := spec.Build(in, spec.BuildOptions{})
		if diags.HasErrors() {
			t.Fatalf("duplicate across files is an error: %v", diags)
		}
		if len(s.Policies) != 1 || s.Policies[0].Sources[0] != ID("bookstore", "bookstore") {
			t.Fatalf("kept %+v, want the one from b.yaml", s.Policies)
		}
		want := "a.yaml: TrafficTarget bookwarehouse/access: metadata.name: warning: duplicate TrafficTarget bookwarehouse/access: overridden by b.yaml (document 0)"
		if !strings.Contains(fmt.Sprint(diags), want) {
			t.Errorf("diagnostics %v\nwant %q", diags, want)
		}
		if _, strict := spec.Build(in, spec.BuildOptions{Strict: true}); !strict.HasErrors() {
			t.Error("duplicate is not an error with Strict")
		}
	}
}

func TestOriginAliases(t *testing.T) {
	t.Parallel()
	o := spec.Origin{Path: "spec.rules[2]", Aliases: map[string]string{"spec.rules": "specs", "spec": "top"}}
	if got := o.Field("matches[0]"); got != "specs[2].matches[0]" {
		t.Errorf("Field = %q", got)
	}
	o.Path = ""
	if got := o.Field("spec.sources"); got != "top.sources" {
		t.Errorf("Field = %q", got)
	}
	if got := o.Field("specx"); got != "specx" {
		t.Errorf("Field = %q (prefix must end at a separator)", got)
	}
}
