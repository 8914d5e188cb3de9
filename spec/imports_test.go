package spec_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

func eastImport(name string) spec.Service {
	east := spiffeid.RequireTrustDomainFromString("east.local")
	return spec.Service{
		Key:        K("bookstore/" + name),
		Ports:      []spec.Port{{Port: 14001, Protocol: spec.ProtocolHTTP}},
		Identities: []spiffeid.ID{spiffeid.RequireFromPath(east, "/ns/bookstore/sa/bookstore-v2")},
		Endpoints: []spec.Endpoint{{Addr: "127.0.0.1", Port: 15443, Ready: true,
			Gateway: spiffeid.RequireFromPath(east, "/ns/causeway-system/sa/causeway-gateway"), Remote: K("bookstore/bookstore-v2")}},
	}
}

// TestBuildWithImports: imports are Services like local ones, so a split
// may name one; they never take a local name, never add a second link for a
// linked cluster, and never stop the local input from building.
func TestBuildWithImports(t *testing.T) {
	t.Parallel()
	eastLink := spec.Link{Cluster: "east", TrustDomain: "east.local", State: spec.LinkActive}
	withSplit := func() spec.Input {
		in := bookstore()
		in.Splits = []spec.Split{Split("bookstore/split", "bookstore/bookstore", "bookstore/bookstore-v1", 50, "bookstore/bookstore-v2-east", 50)}
		return in
	}
	tests := []struct {
		name     string
		in       spec.Input
		imp      spec.Input
		backends int
		links    int
		warning  string
		errors   bool
	}{
		{name: "no imports: the split loses the missing backend", in: withSplit(), backends: 1, warning: "bookstore-v2-east"},
		{name: "the import resolves the backend", in: withSplit(), imp: spec.Input{Services: []spec.Service{eastImport("bookstore-v2-east")}, Links: []spec.Link{eastLink}},
			backends: 2, links: 1},
		{name: "a linked cluster is linked once", in: func() spec.Input { in := withSplit(); in.Links = []spec.Link{eastLink}; return in }(),
			imp: spec.Input{Links: []spec.Link{{Cluster: "east", TrustDomain: "other.local"}}}, backends: 1, links: 1},
		{name: "an import never takes a local name", in: withSplit(), imp: spec.Input{Services: []spec.Service{eastImport("bookstore-v1")}},
			backends: 1, warning: "import bookstore/bookstore-v1 left out"},
		{name: "imports that do not build are left out", in: withSplit(),
			imp:      spec.Input{Services: []spec.Service{{Key: K("bookstore/bad-east"), Ports: []spec.Port{{Port: 0, Protocol: spec.ProtocolTCP}}}}},
			backends: 1, warning: "imports left out"},
		{name: "a broken input reports itself", in: func() spec.Input { in := withSplit(); in.Splits[0].Backends[0].Weight = -1; return in }(),
			imp: spec.Input{Services: []spec.Service{{Key: K("bookstore/bad-east"), Ports: []spec.Port{{Port: 0, Protocol: spec.ProtocolTCP}}}}}, errors: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap, diags := spec.BuildWithImports(tt.in, tt.imp, spec.BuildOptions{})
			if diags.HasErrors() != tt.errors {
				t.Fatalf("errors = %v, want %v: %v", diags.HasErrors(), tt.errors, diags)
			}
			if tt.errors {
				if strings.Contains(fmt.Sprint(diags), "imports left out") {
					t.Errorf("the input's own error was blamed on the imports: %v", diags)
				}
				return
			}
			if n := len(snap.Splits[0].Backends); n != tt.backends {
				t.Errorf("%d split backends, want %d", n, tt.backends)
			}
			if len(snap.Links) != tt.links {
				t.Errorf("%d links, want %d", len(snap.Links), tt.links)
			}
			if tt.warning != "" && !strings.Contains(fmt.Sprint(diags), tt.warning) {
				t.Errorf("diagnostics %v lack %q", diags, tt.warning)
			}
			// The local services come through whatever the imports were.
			for _, s := range tt.in.Services {
				if snap.Service(s.Key) == nil {
					t.Errorf("local service %s lost", s.Key)
				}
			}
			if !slices.ContainsFunc(snap.Services, func(s spec.Service) bool {
				return s.Key == K("bookstore/bookstore-v1") && s.Endpoints[0].Gateway.IsZero()
			}) {
				t.Errorf("the local bookstore-v1 was replaced")
			}
		})
	}
}
