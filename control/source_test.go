package control_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/spec"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// callersLoader is a small stand-in for adapters/pipeline: each *.callers
// file under dir lists SPIFFE IDs allowed to call shop/api, one per line.
// A line that is not a SPIFFE ID is an error diagnostic naming file and line.
func callersLoader(calls *int, mu *sync.Mutex) control.Loader {
	return func(dir string) (*spec.Snapshot, spec.Diagnostics, error) {
		mu.Lock()
		*calls++
		mu.Unlock()
		var diags spec.Diagnostics
		var ids []spiffeid.ID
		files, err := filepath.Glob(filepath.Join(dir, "*", "*.callers"))
		if err != nil {
			return nil, nil, err
		}
		top, _ := filepath.Glob(filepath.Join(dir, "*.callers"))
		for _, f := range append(top, files...) {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, nil, err
			}
			for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				id, err := spiffeid.FromString(strings.TrimSpace(line))
				if err != nil {
					diags.Errorf(spec.Source{File: f, Line: i + 1}, spec.Object{Kind: "Callers"}, "", "%v", err)
					continue
				}
				ids = append(ids, id)
			}
		}
		snap, d := spec.Build(Mesh(ids...), spec.BuildOptions{})
		return snap, append(diags, d...), nil
	}
}

func TestDirSourceReloadsAndKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "api.callers")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(Web.String())
	srv := control.New(control.Options{Logger: Quiet})
	var mu sync.Mutex
	loads := 0
	src := &control.DirSource{Dir: dir, Load: callersLoader(&loads, &mu), Debounce: 50 * time.Millisecond, Logger: Quiet}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, srv.Publish) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	WaitFor(t, srv, "first load", func() bool { return srv.Snapshot() != nil })
	first := srv.Snapshot().Version

	steps := []struct {
		name    string
		edit    func()
		want    spec.Input // the mesh that must be served after the edit
		wantErr string     // a diagnostic that must be reported
	}{
		{"edit adds a caller", func() { write(Web.String() + "\n" + DB.String()) }, Mesh(Web, DB), ""},
		{"bad edit keeps the last snapshot", func() { write("not-an-id\n" + DB.String()) }, Mesh(Web, DB), "api.callers:1"},
		{"fix is picked up", func() { write(DB.String()) }, Mesh(DB), ""},
		{"new subdirectory is watched", func() {
			sub := filepath.Join(dir, "more")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			// Give the watcher a moment to add the new directory before
			// the file appears in it; a real editor is never this fast.
			time.Sleep(100 * time.Millisecond)
			if err := os.WriteFile(filepath.Join(sub, "x.callers"), []byte(Web.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}, Mesh(DB, Web), ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			want := Snapshot(t, st.want).Version
			before := srv.Status().UpdatedAt
			st.edit()
			start := time.Now()
			WaitFor(t, srv, "reload after "+st.name, func() bool {
				s := srv.Status()
				return s.UpdatedAt.After(before) && s.Version == want && (st.wantErr == "") != s.Rejected
			})
			t.Logf("reloaded in %v", time.Since(start).Round(time.Millisecond))
			s := srv.Status()
			if st.wantErr != "" && (len(s.Diagnostics) == 0 || !strings.Contains(s.Diagnostics[0].String(), st.wantErr)) {
				t.Errorf("diagnostics %v do not name %s", s.Diagnostics, st.wantErr)
			}
		})
	}
	if srv.Snapshot().Version == first {
		t.Error("snapshot never changed")
	}
}

func TestDirSourceDebouncesBursts(t *testing.T) {
	dir := t.TempDir()
	srv := control.New(control.Options{Logger: Quiet})
	var mu sync.Mutex
	loads := 0
	src := &control.DirSource{Dir: dir, Load: callersLoader(&loads, &mu), Debounce: 200 * time.Millisecond, Logger: Quiet}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx, srv.Publish) }()
	WaitFor(t, srv, "first load", func() bool { return srv.Snapshot() != nil })
	// Twenty writes 5ms apart: well inside one debounce window.
	for i := range 20 {
		ids := []string{Web.String()}
		if i%2 == 1 {
			ids = append(ids, DB.String())
		}
		if err := os.WriteFile(filepath.Join(dir, "api.callers"), []byte(strings.Join(ids, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	want := Snapshot(t, Mesh(Web, DB)).Version
	WaitFor(t, srv, "the burst's final state", func() bool { return srv.Snapshot().Version == want })
	mu.Lock()
	defer mu.Unlock()
	// One initial load, and the burst coalesced into a few (a slow machine
	// may split it once or twice), never one per write.
	if loads < 2 || loads > 4 {
		t.Errorf("%d loads for one burst of 20 writes; want 2-4", loads)
	}
}

func TestDirSourceMissingDir(t *testing.T) {
	src := &control.DirSource{Dir: filepath.Join(t.TempDir(), "absent"), Load: func(string) (*spec.Snapshot, spec.Diagnostics, error) {
		return nil, nil, errors.New("unreachable")
	}}
	err := src.Run(context.Background(), func(*spec.Snapshot, spec.Diagnostics) bool { return true })
	if err == nil || !strings.Contains(err.Error(), "absent") {
		t.Fatalf("Run on a missing directory = %v, want an error naming it", err)
	}
}
