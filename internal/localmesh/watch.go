package localmesh

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch calls reload once, then again after each settled burst of changes
// under dir (subfolders included, editors' dot-files and attribute changes
// not), and at once whenever kick fires, until ctx ends. It is
// control.DirSource plus the kick: a cluster reloads when its imports from
// linked clusters change too, on the same goroutine as its edits, so loads
// and publishes never race. It owns one goroutine: the caller's.
func watch(ctx context.Context, dir string, debounce time.Duration, kick <-chan struct{}, log *slog.Logger, reload func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	// Watch before the first load, so a change made during it is not lost.
	if err := addTree(w, dir); err != nil {
		return err
	}
	reload()

	timer := time.NewTimer(debounce)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
			reload()
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				// A new subdirectory must be watched too; a file is fine.
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					if err := addTree(w, ev.Name); err != nil {
						log.Warn("up: cannot watch new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			if ev.Op == fsnotify.Chmod || hidden(ev.Name) {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow means events were lost; reloading covers them.
			log.Warn("up: watch error; reloading", "dir", dir, "err", err)
			timer.Reset(debounce)
		case <-timer.C:
			reload()
		}
	}
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
