package control_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/adapters/pipeline"
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

// imports is federation's side as the loader and the source see it: what
// Imports returns, and a Changes channel fired on every set.
type imports struct {
	mu      sync.Mutex
	in      spec.Input
	changes chan struct{}
}

func (f *imports) Imports() spec.Input {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.in
}

func (f *imports) set(in spec.Input) {
	f.mu.Lock()
	f.in = in
	f.mu.Unlock()
	f.changes <- struct{}{}
}

const splitToImport = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v1, namespace: shop}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: web, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 50}
  - {service: web-east, weight: 50}
`

// TestDirSourceMergesImports: imports join the manifests before the build,
// so a TrafficSplit naming an import keeps that backend once the import
// exists; a change of the imports loads again with no edit; and Observed
// hands every accepted load to federation's SetLocal.
func TestDirSourceMergesImports(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(splitToImport), 0o644); err != nil {
		t.Fatal(err)
	}
	imp := &imports{changes: make(chan struct{}, 1)}
	var observed []*spec.Snapshot
	var mu sync.Mutex
	src := &control.Observed{
		Source: &control.DirSource{Dir: dir, Debounce: 10 * time.Millisecond, Logger: Quiet, Reload: imp.changes,
			Load: control.ManifestLoader(pipeline.Options{TrustDomain: "west.local", Imports: imp.Imports})},
		Loaded: func(s *spec.Snapshot) { mu.Lock(); observed = append(observed, s); mu.Unlock() },
	}
	pubs := make(chan *spec.Snapshot, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, func(s *spec.Snapshot, d spec.Diagnostics) bool {
			if d.HasErrors() {
				t.Errorf("load with errors: %v", d)
			}
			pubs <- s
			return true
		})
	}()
	next := func(what string) *spec.Snapshot {
		t.Helper()
		select {
		case s := <-pubs:
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("no publish: %s", what)
			return nil
		}
	}
	backends := func(s *spec.Snapshot) []string {
		var out []string
		for _, sp := range s.Splits {
			for _, b := range sp.Backends {
				out = append(out, b.Service.Name)
			}
		}
		return out
	}
	first := next("first load")
	if got := backends(first); len(got) != 1 || got[0] != "web-v1" {
		t.Fatalf("before any import the split's backends are %v, want only web-v1 (web-east does not exist yet)", got)
	}
	steps := []struct {
		name     string
		in       spec.Input
		backends int
		links    int
	}{
		{"import arrives", spec.Input{Services: []spec.Service{importOf("web-east")},
			Links: []spec.Link{{Cluster: "east", TrustDomain: "east.local", State: spec.LinkActive}}}, 2, 1},
		{"import named like a local service is left out", spec.Input{Services: []spec.Service{importOf("web-v1")}}, 1, 0},
		{"import gone", spec.Input{}, 1, 0},
	}
	for _, st := range steps {
		imp.set(st.in)
		s := next(st.name)
		if got := backends(s); len(got) != st.backends {
			t.Errorf("%s: backends %v, want %d", st.name, got, st.backends)
		}
		if len(s.Links) != st.links {
			t.Errorf("%s: %d links, want %d", st.name, len(s.Links), st.links)
		}
		if st.backends == 2 {
			if svc := s.Service(K("shop/web-east")); svc == nil || svc.Endpoints[0].Gateway.IsZero() {
				t.Errorf("%s: import shop/web-east missing or without its gateway: %+v", st.name, svc)
			}
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(observed) != 1+len(steps) {
		t.Errorf("Loaded saw %d loads, want %d", len(observed), 1+len(steps))
	}
}
