package control_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// importOf is what federation makes of east's shop/web.
func importOf(name string) spec.Service {
	east := spiffeid.RequireTrustDomainFromString("east.local")
	return spec.Service{
		Key:        K("shop/" + name),
		Ports:      []spec.Port{{Port: 8080, Protocol: spec.ProtocolHTTP}},
		Identities: []spiffeid.ID{spiffeid.RequireFromPath(east, "/ns/shop/sa/web")},
		Endpoints: []spec.Endpoint{{Addr: "127.0.0.1", Port: 15443, Ready: true,
			Gateway: spiffeid.RequireFromPath(east, "/ns/causeway-system/sa/causeway-gateway"), Remote: K("shop/web")}},
		Origin: spec.Origin{Source: spec.Source{File: "federation:east"}, Object: spec.Object{Kind: "ServiceImport", Namespace: "shop", Name: "web"}},
	}
}

var eastLink = spec.Link{Cluster: "east", TrustDomain: "east.local", State: spec.LinkActive}

func TestMergeImports(t *testing.T) {
	t.Parallel()
	base := Snapshot(t, Mesh(Web))
	tests := []struct {
		name      string
		snap      *spec.Snapshot
		diags     spec.Diagnostics
		imp       spec.Input
		services  []string // keys in the result
		links     int
		warning   string // a warning the merge must add
		unchanged bool   // the very snapshot passed in comes back
	}{
		{name: "no imports", snap: base, services: []string{"shop/api", "shop/db", "shop/web"}, unchanged: true},
		{name: "an import and its link", snap: base, imp: spec.Input{Services: []spec.Service{importOf("web-east")}, Links: []spec.Link{eastLink}},
			services: []string{"shop/api", "shop/db", "shop/web", "shop/web-east"}, links: 1},
		{name: "only a link", snap: base, imp: spec.Input{Links: []spec.Link{eastLink}}, services: []string{"shop/api", "shop/db", "shop/web"}, links: 1},
		{name: "import named like a local service", snap: base, imp: spec.Input{Services: []spec.Service{importOf("web")}},
			services: []string{"shop/api", "shop/db", "shop/web"}, warning: "import shop/web left out"},
		{name: "invalid import", snap: base, imp: spec.Input{Services: []spec.Service{{Key: K("shop/bad-east"), Ports: []spec.Port{{Port: 0, Protocol: "tcp"}}}}},
			services: []string{"shop/api", "shop/db", "shop/web"}, warning: "imports left out", unchanged: true},
		{name: "failed load passes through", snap: base, diags: spec.Diagnostics{{Severity: spec.SeverityError, Message: "broken"}},
			imp: spec.Input{Services: []spec.Service{importOf("web-east")}}, services: []string{"shop/api", "shop/db", "shop/web"}, unchanged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, diags := control.MergeImports(tt.snap, tt.diags, tt.imp, Quiet)
			var keys []string
			for _, s := range got.Services {
				keys = append(keys, s.Key.String())
			}
			if !slices.Equal(keys, tt.services) {
				t.Errorf("services %v, want %v", keys, tt.services)
			}
			if len(got.Links) != tt.links {
				t.Errorf("%d links, want %d", len(got.Links), tt.links)
			}
			if tt.unchanged != (got == tt.snap) {
				t.Errorf("snapshot returned as is: %v, want %v", got == tt.snap, tt.unchanged)
			}
			if !tt.unchanged && got.Version == tt.snap.Version && tt.warning == "" {
				t.Errorf("merged snapshot kept version %s", got.Version)
			}
			if tt.warning != "" && !strings.Contains(fmt.Sprint(diags), tt.warning) {
				t.Errorf("diagnostics %v lack %q", diags, tt.warning)
			}
			// The local part survives the rebuild unchanged.
			for _, s := range tt.snap.Services {
				if m := got.Service(s.Key); m == nil || !reflect.DeepEqual(m.Endpoints, s.Endpoints) {
					t.Errorf("local service %s changed in the merge: %+v", s.Key, m)
				}
			}
			if !slices.EqualFunc(got.Policies, tt.snap.Policies, func(a, b spec.AccessPolicy) bool { return a.Key == b.Key }) {
				t.Errorf("policies changed in the merge")
			}
		})
	}
}

// fakeImports is an Imports whose content the test sets.
type fakeImports struct {
	mu      sync.Mutex
	in      spec.Input
	changes chan struct{}
}

func (f *fakeImports) Imports() spec.Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.in
}
func (f *fakeImports) Changes() <-chan struct{} { return f.changes }
func (f *fakeImports) set(in spec.Input) {
	f.mu.Lock()
	f.in = in
	f.mu.Unlock()
	f.changes <- struct{}{}
}

// TestMergedSourceRepublishes: a load is published merged, and a change
// of imports publishes the same load merged anew, with no reload.
func TestMergedSourceRepublishes(t *testing.T) {
	imp := &fakeImports{changes: make(chan struct{}, 1)}
	var loads int
	src := control.ServeFunc(func(ctx context.Context, publish func(*spec.Snapshot, spec.Diagnostics) bool) error {
		loads++
		publish(Snapshot(t, Mesh(Web)), nil)
		<-ctx.Done()
		return nil
	})
	var loaded []*spec.Snapshot
	var mu sync.Mutex
	pubs := make(chan *spec.Snapshot, 8)
	m := &control.MergedSource{Source: src, Imports: imp, Logger: Quiet, Loaded: func(s *spec.Snapshot) {
		mu.Lock()
		loaded = append(loaded, s)
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, func(s *spec.Snapshot, _ spec.Diagnostics) bool { pubs <- s; return true })
	}()
	next := func(what string) *spec.Snapshot {
		t.Helper()
		select {
		case s := <-pubs:
			return s
		case <-time.After(5 * time.Second):
			t.Fatalf("no publish: %s", what)
			return nil
		}
	}
	first := next("first load")
	if first.Service(K("shop/web-east")) != nil {
		t.Fatal("import before any was set")
	}
	steps := []struct {
		name string
		in   spec.Input
		want bool // shop/web-east present
	}{
		{"import added", spec.Input{Services: []spec.Service{importOf("web-east")}, Links: []spec.Link{eastLink}}, true},
		{"import removed", spec.Input{Links: []spec.Link{eastLink}}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			imp.set(st.in)
			s := next(st.name)
			if got := s.Service(K("shop/web-east")) != nil; got != st.want {
				t.Errorf("shop/web-east present = %v, want %v", got, st.want)
			}
			if len(s.Links) != 1 {
				t.Errorf("%d links, want 1", len(s.Links))
			}
		})
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if loads != 1 || len(loaded) != 1 || loaded[0].Service(K("shop/web-east")) != nil {
		t.Errorf("source loaded %d times, Loaded saw %d snapshots; want 1 and 1 without imports", loads, len(loaded))
	}
}
