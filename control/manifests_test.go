package control_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

const services = `apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: bookstore}
spec:
  ports: [{name: http, port: 14001}]
---
apiVersion: v1
kind: Service
metadata: {name: bookstore-v1, namespace: bookstore}
spec:
  ports: [{name: http, port: 14001}]
---
apiVersion: v1
kind: Service
metadata: {name: bookstore-v2, namespace: bookstore}
spec:
  ports: [{name: http, port: 14001}]
`

func split(v1, v2 string) string {
	return `apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: bookstore-split, namespace: bookstore}
spec:
  service: bookstore
  backends:
  - {service: bookstore-v1, weight: ` + v1 + `}
  - {service: bookstore-v2, weight: ` + v2 + `}
`
}

// TestManifestDirectoryEndToEnd runs the real manifest pipeline under the
// directory watch, with a proxy connected: editing the TrafficSplit file
// reaches the proxy; a bad edit is reported and reaches no one.
func TestManifestDirectoryEndToEnd(t *testing.T) {
	dir := t.TempDir()
	splitFile := filepath.Join(dir, "split.yaml")
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "services.yaml"), services)
	write(splitFile, split("50", "50"))

	srv, addr := Start(t, "", control.Options{})
	src := &control.DirSource{Dir: dir, Load: control.ManifestLoader(pipeline.Options{TrustDomain: TrustDomain}), Logger: Quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, srv.Publish) }()
	t.Cleanup(func() { cancel(); <-done })

	buyer := spec.Node{ID: "bookbuyer-0", Identity: ID("bookbuyer", "bookbuyer")}
	p := connect(t, addr, buyer, nil)
	WaitFor(t, srv, "first snapshot", func() bool { return srv.Snapshot() != nil })
	synced(t, srv, buyer, srv.Snapshot())

	weights := func(snap *spec.Snapshot) []int64 {
		cfg := spec.Compile(snap, buyer)
		for _, u := range cfg.Upstreams {
			if u.Service == K("bookstore/bookstore") {
				var w []int64
				for _, b := range u.Default {
					w = append(w, b.Weight)
				}
				return w
			}
		}
		return nil
	}
	steps := []struct {
		name        string
		body        string
		wantWeights []int64
		wantError   string
		wantOffers  int
	}{
		{"shift the split", split("90", "10"), []int64{90000, 10000}, "", 2},
		{"invalid weight is refused", split("90", "-5"), []int64{90000, 10000}, "split.yaml", 2},
		{"shift back", split("0", "100"), []int64{0, 100000}, "", 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := srv.Status().UpdatedAt
			start := time.Now()
			write(splitFile, st.body)
			WaitFor(t, srv, "reload", func() bool { return srv.Status().UpdatedAt.After(before) })
			s := srv.Status()
			if got := weights(srv.Snapshot()); !slices.Equal(got, st.wantWeights) {
				t.Fatalf("served weights %v, want %v", got, st.wantWeights)
			}
			if st.wantError != "" {
				if !s.Rejected || s.Diagnostics.Err() == nil || !strings.Contains(s.Diagnostics.Err().Error(), st.wantError) {
					t.Fatalf("status %+v: want rejected with an error naming %s", s, st.wantError)
				}
				return
			}
			synced(t, srv, buyer, srv.Snapshot())
			t.Logf("edit to ACK: %v", time.Since(start).Round(time.Millisecond))
			if got := len(p.offered()); got != st.wantOffers {
				t.Errorf("proxy got %d configs, want %d", got, st.wantOffers)
			}
		})
	}
}
