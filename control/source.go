package control

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	// Reload, when set, asks for a reload whenever it fires, as an edit
	// would: federation's import changes (the Loader merges the imports,
	// see pipeline.Options.Imports).
	Reload <-chan struct{}
	Logger *slog.Logger
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
		case <-d.Reload:
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

// Observed wraps a Source and hands each load without errors to Loaded
// before it is published: federation's SetLocal, which sends linked
// clusters what this one exports. Loaded runs on the Source's goroutine and
// must not block.
type Observed struct {
	Source Source
	Loaded func(*spec.Snapshot)
}

// Run implements Source.
func (o *Observed) Run(ctx context.Context, publish Publisher) error {
	return o.Source.Run(ctx, func(s *spec.Snapshot, d spec.Diagnostics) bool {
		if s != nil && !d.HasErrors() {
			o.Loaded(s)
		}
		return publish(s, d)
	})
}
