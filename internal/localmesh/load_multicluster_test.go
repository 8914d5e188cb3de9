package localmesh

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// fixedImports is a federator whose imports are given: load's merge is
// tested without a peer.
type fixedImports struct{ in spec.Input }

func (f fixedImports) Generate(time.Duration) (string, error) { return "", nil }
func (f fixedImports) Apply(context.Context, string) error    { return nil }
func (f fixedImports) SetLocal(*spec.Snapshot)                {}
func (f fixedImports) Imports() spec.Input                    { return f.in }
func (f fixedImports) Changes() <-chan struct{}               { return nil }
func (f fixedImports) Remove(context.Context, string) error   { return nil }

// TestLoadMulticlusterExample loads each cluster folder of
// examples/multicluster as `causeway up` does: east exports bookstore-v2
// and admits west's bookbuyer (not bookthief); west's split takes the
// import as a backend once federation offers it, and only warns before.
func TestLoadMulticlusterExample(t *testing.T) {
	t.Parallel()
	example := filepath.Join("..", "..", "examples", "multicluster")
	lay, err := readLayout(example)
	if err != nil || len(lay.clusters) != 2 || len(lay.warnings) > 0 || len(lay.links) != 1 {
		t.Fatalf("layout of %s: %+v, %v", example, lay, err)
	}
	newCluster := func(name, td string, imp *spec.Input) *cluster {
		i := slices.IndexFunc(lay.clusters, func(c layoutCluster) bool { return c.cluster.Name == name })
		def := lay.clusters[i].cluster
		if def.TrustDomain != td {
			t.Fatalf("cluster %s has trust domain %s, want %s", name, def.TrustDomain, td)
		}
		c := &cluster{m: &Mesh{ports: newPortBook()}, name: name, dir: lay.clusters[i].dir,
			td: spiffeid.RequireTrustDomainFromString(td), def: &def}
		if imp != nil {
			c.fed = fixedImports{*imp}
		}
		return c
	}
	eastID := spiffeid.RequireFromString("spiffe://east.causeway.local/ns/bookstore/sa/bookstore")
	importV2 := spec.Service{Key: spec.Key{Namespace: "bookstore", Name: "bookstore-v2-east"},
		Ports:      []spec.Port{{Name: "http", Port: 14001, Protocol: spec.ProtocolHTTP, TargetPort: 14212}},
		Identities: []spiffeid.ID{eastID},
		Endpoints: []spec.Endpoint{{Addr: "127.0.0.1", Port: 15441, Ready: true,
			Gateway: gatewayID(eastID.TrustDomain()), Remote: spec.Key{Namespace: "bookstore", Name: "bookstore-v2"}}},
		Origin: spec.Origin{Source: spec.Source{File: "federation:east"}, Object: spec.Object{Kind: "ServiceImport", Namespace: "bookstore", Name: "bookstore-v2"}},
	}
	clash := importV2
	clash.Key.Name = "bookstore-v1" // a peer naming an import like a local service

	t.Run("east exports bookstore-v2 and admits west's bookbuyer", func(t *testing.T) {
		t.Parallel()
		c := newCluster("east", "east.causeway.local", nil)
		snap, diags, err := c.load(c.dir)
		if err != nil || len(diags) > 0 {
			t.Fatalf("load: %v %v", err, diags)
		}
		v2 := snap.Service(spec.Key{Namespace: "bookstore", Name: "bookstore-v2"})
		if v2 == nil || !v2.Export || !slices.Equal(v2.Identities, []spiffeid.ID{eastID}) {
			t.Fatalf("bookstore-v2 = %+v, want exported with east's identity", v2)
		}
		var srcs []string
		for _, p := range snap.Policies {
			for _, s := range p.Sources {
				srcs = append(srcs, s.String())
			}
		}
		want := []string{"spiffe://east.causeway.local/ns/bookbuyer/sa/bookbuyer", "spiffe://west.causeway.local/ns/bookbuyer/sa/bookbuyer"}
		if !slices.Equal(srcs, want) {
			t.Fatalf("policy sources %v, want %v", srcs, want)
		}
	})
	tests := []struct {
		name     string
		imports  []spec.Service
		backends []string
		warnings []string // substrings, in the diagnostics' sorted order
	}{
		{name: "west before the link: the split warns and keeps its local backend",
			backends: []string{"bookstore-v1"},
			warnings: []string{"backend service bookstore/bookstore-v2-east not found"}},
		{name: "west with the import: the split sends half to east",
			imports: []spec.Service{importV2}, backends: []string{"bookstore-v1", "bookstore-v2-east"}},
		{name: "an import may not take a local name",
			imports: []spec.Service{clash}, backends: []string{"bookstore-v1"},
			warnings: []string{"bookstore-v2-east not found", "federation:east: ServiceImport bookstore/bookstore-v2: warning: import bookstore/bookstore-v1 left out: a local Service has that name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster("west", "west.causeway.local", &spec.Input{Services: tc.imports,
				TrustDomain: "east.causeway.local", Mode: spec.ModePermissive}) // both ignored: the cluster's own
			snap, diags, err := c.load(c.dir)
			if err != nil || diags.HasErrors() {
				t.Fatalf("load: %v %v", err, diags)
			}
			if snap.TrustDomain != "west.causeway.local" || snap.Mode != spec.ModeStrict {
				t.Fatalf("snapshot trust domain %s, mode %s: an import changed the cluster's own", snap.TrustDomain, snap.Mode)
			}
			var backends []string
			for _, s := range snap.Splits {
				for _, b := range s.Backends {
					backends = append(backends, b.Service.Name)
				}
			}
			if !slices.Equal(backends, tc.backends) {
				t.Fatalf("split backends %v, want %v", backends, tc.backends)
			}
			if len(diags) != len(tc.warnings) {
				t.Fatalf("diagnostics %v, want %d warnings", diags, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if !strings.Contains(diags[i].String(), w) {
					t.Errorf("diagnostic %q, want one containing %q", diags[i], w)
				}
			}
		})
	}
	t.Run("an edit of the running Cluster needs a restart", func(t *testing.T) {
		t.Parallel()
		c := newCluster("west", "west.causeway.local", nil)
		c.def.TrustDomain = "other.td"
		_, diags, err := c.load(c.dir)
		if err != nil || !slices.ContainsFunc(diags.Errors(), func(d spec.Diagnostic) bool {
			return strings.HasSuffix(d.String(), "Cluster west: spec.trustDomain: the running cluster has other.td; changing it needs a restart of causeway up")
		}) {
			t.Fatalf("diagnostics %v, want an error on spec.trustDomain", diags)
		}
	})
}
