package control

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/causeway-mesh/causeway/spec"
)

// Publisher receives every load of the inputs; *Server.Publish is one.
type Publisher func(*spec.Snapshot, spec.Diagnostics) bool

// Source is an input the control plane runs: it publishes the inputs as
// they are when Run starts, then again after each change, until ctx ends.
// A manifest directory (DirSource) is the embedded default; Kubernetes
// informers (adapters/kube) are another.
type Source interface {
	Run(ctx context.Context, publish Publisher) error
}

// Loader turns a directory of manifests into a snapshot and its
// diagnostics; adapters/pipeline.Load is the real one. An error means the
// directory could not be read at all.
type Loader func(dir string) (*spec.Snapshot, spec.Diagnostics, error)

// DirSource watches a manifest directory (and its subdirectories) with
// fsnotify and reloads it after a burst of changes settles.
type DirSource struct {
	Dir  string
	Load Loader
	// Debounce is how long the directory must be quiet before a reload;
	// editors write a file in several steps (truncate, write, rename), and
	// `kubectl`-style tools touch many files at once. 0 means 100ms.
	Debounce time.Duration
	Logger   *slog.Logger
}

// Run loads once, then reloads after each settled burst of changes. It
// owns one goroutine: this one, which reads fsnotify's channels and loads.
func (d *DirSource) Run(ctx context.Context, publish Publisher) error {
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	debounce := d.Debounce
	if debounce <= 0 {
		debounce = 100 * time.Millisecond
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", d.Dir, err)
	}
	defer w.Close()
	// Watch before the first load, so a change made during it is not lost.
	if err := addTree(w, d.Dir); err != nil {
		return err
	}
	d.reload(log, publish)

	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				// A new subdirectory must be watched too; a file is fine.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := addTree(w, ev.Name); err != nil {
						log.Warn("control: cannot watch new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			if ev.Op == fsnotify.Chmod || hidden(ev.Name) {
				continue // editors' swap files and attribute changes are not edits
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow means events were lost; reloading covers them.
			log.Warn("control: watch error; reloading", "dir", d.Dir, "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			d.reload(log, publish)
		}
	}
}

func (d *DirSource) reload(log *slog.Logger, publish Publisher) {
	snap, diags, err := d.Load(d.Dir)
	if err != nil {
		// The directory itself is unreadable: report it like any other
		// input error, so the last good snapshot keeps serving.
		diags = append(diags, spec.Diagnostic{Severity: spec.SeverityError, Source: spec.Source{File: d.Dir}, Message: err.Error()})
		snap = nil
	}
	if publish(snap, diags) && snap != nil {
		log.Debug("control: manifests loaded", "dir", d.Dir, "version", snap.Version)
	}
}

// hidden reports dot-files (.file.yaml.swp, .#file) that editors create
// beside the file being edited.
func hidden(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~")
}

func addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		if !e.IsDir() {
			return nil
		}
		if path != root && hidden(path) {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			return fmt.Errorf("watch %s: %w", path, err)
		}
		return nil
	})
}

// ServeFunc adapts a watcher whose Serve method publishes like Server.Publish
// (adapters/kube.Watcher.Serve) into a Source, so control does not import
// client-go: `control.ServeFunc(watcher.Serve)`.
type ServeFunc func(ctx context.Context, publish func(*spec.Snapshot, spec.Diagnostics) bool) error

// Run implements Source.
func (f ServeFunc) Run(ctx context.Context, publish Publisher) error { return f(ctx, publish) }

// Imports is an extra input merged into every load of a Source:
// federation's imported services and links (*federation.Links is one).
type Imports interface {
	Imports() spec.Input
	// Changes fires whenever Imports would return something new.
	Changes() <-chan struct{}
}

// MergedSource runs Source and publishes each of its loads with Imports
// added, and publishes the last load again, merged anew, whenever the
// imports change. It wraps any Source (a manifest directory or the
// cluster), so neither needs to know about federation.
type MergedSource struct {
	Source  Source
	Imports Imports
	// Loaded, when set, sees each snapshot Source loads, before the merge:
	// federation's SetLocal, so a cluster exports only its own services and
	// never re-exports an import.
	Loaded func(*spec.Snapshot)
	Logger *slog.Logger
}

// Run owns the calling goroutine, which waits for import changes, and runs
// Source.Run on one more goroutine; both publish through one mutex so a
// merge is never published over a newer one.
func (m *MergedSource) Run(ctx context.Context, publish Publisher) error {
	log := m.Logger
	if log == nil {
		log = slog.Default()
	}
	var (
		mu    sync.Mutex
		snap  *spec.Snapshot
		diags spec.Diagnostics
		have  bool
	)
	merged := func() bool {
		s, d := MergeImports(snap, diags, m.Imports.Imports(), log)
		return publish(s, d)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- m.Source.Run(ctx, func(s *spec.Snapshot, d spec.Diagnostics) bool {
			if m.Loaded != nil && s != nil && !d.HasErrors() {
				m.Loaded(s)
			}
			mu.Lock()
			defer mu.Unlock()
			snap, diags, have = s, d, true
			return merged()
		})
	}()
	for {
		select {
		case err := <-errc:
			return err
		case <-m.Imports.Changes():
			mu.Lock()
			if have {
				merged()
			}
			mu.Unlock()
		}
	}
}

// MergeImports adds imports to a loaded snapshot and builds it again. A
// load that failed (nil snapshot or errors) is passed through untouched,
// so it is refused as before. An imported service whose name a local
// service already has is left out with a warning, and if the merge itself
// fails the snapshot is published without imports, with a warning: a peer
// can never stop local changes from being served.
func MergeImports(snap *spec.Snapshot, diags spec.Diagnostics, imp spec.Input, log *slog.Logger) (*spec.Snapshot, spec.Diagnostics) {
	if snap == nil || diags.HasErrors() || (len(imp.Services) == 0 && len(imp.Links) == 0) {
		return snap, diags
	}
	diags = slices.Clone(diags)
	in := spec.Input{TrustDomain: snap.TrustDomain, Mode: snap.Mode,
		Services: slices.Clone(snap.Services), Routes: snap.Routes, Splits: snap.Splits,
		Policies: snap.Policies, Links: slices.Clone(snap.Links)}
	local := map[spec.Key]bool{}
	for _, s := range snap.Services {
		local[s.Key] = true
	}
	linked := map[string]bool{}
	for _, l := range snap.Links {
		linked[l.Cluster] = true
	}
	for _, s := range imp.Services {
		if local[s.Key] {
			diags = append(diags, spec.Diagnostic{Severity: spec.SeverityWarning, Source: s.Origin.Source, Object: s.Origin.Object,
				Message: fmt.Sprintf("import %s left out: a local service has that name", s.Key)})
			continue
		}
		in.Services = append(in.Services, s)
	}
	for _, l := range imp.Links {
		if !linked[l.Cluster] { // a manifest's ClusterLink wins over the live link
			in.Links = append(in.Links, l)
		}
	}
	out, d := spec.Build(in, spec.BuildOptions{})
	if d.HasErrors() {
		log.Warn("control: imports left out: merging them failed", "first", firstError(d))
		return snap, append(diags, spec.Diagnostic{Severity: spec.SeverityWarning, Source: spec.Source{File: "federation"},
			Message: "imports left out: " + firstError(d)})
	}
	return out, diags
}
