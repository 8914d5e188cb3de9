package localmesh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure Run.
type Options struct {
	// Dir is the folder of manifests; it is watched. A folder whose
	// subfolders each hold a Cluster runs one cluster per subfolder.
	Dir string
	// Binary is the causeway executable that runs sidecars, gateways and
	// the commands whose program is "causeway".
	Binary string
	// REST is the REST and SMI metrics API address of a single-cluster
	// folder; "" means 127.0.0.1:15000, where `causeway stat` looks by
	// default. In a multi-cluster folder each Cluster's adminPort says
	// where its API listens (0: a free port).
	REST string
	// GRPC is the config stream's address of a single-cluster folder; ""
	// means a free loopback port (always, for several clusters).
	GRPC string
	// Out gets the summary, one line per change and the workloads' output.
	Out io.Writer
	// Logger gets the components' logs; nil discards them (they would
	// drown the summary), warnings and errors still reach Out.
	Logger *slog.Logger
	// Debounce of the folder watch; 0 means 100ms.
	Debounce time.Duration
	// ScrapeEvery is how often the proxies' metrics are read; 0 means 1s.
	ScrapeEvery time.Duration
	// MetricsWindow is the span the SMI metrics API covers; 0 means 10s,
	// shorter than SMI's 30s so that `causeway stat` follows an edit of
	// the folder within seconds.
	MetricsWindow time.Duration
	// Grace is how long a child gets between SIGTERM and SIGKILL; 0 means 5s.
	Grace time.Duration
}

// controlSA names the control plane's own SVID: spiffe://<td>/ns/causeway/sa/control.
const controlNS, controlSA = "causeway", "control"

// Mesh is one run of `causeway up`: one cluster, or several linked ones.
type Mesh struct {
	opts   Options
	log    *slog.Logger
	runDir string
	multi  bool // the folder holds one cluster per subfolder

	// ports is shared by every cluster: they all bind 127.0.0.1.
	ports    *portBook
	clusters []*cluster
	linkMu   sync.Mutex // links is replaced by followLinks, read by loads
	links    []linkSpec

	began time.Time

	// ctx ends when the run stops: waits for children give way to it.
	ctx context.Context

	outMu sync.Mutex // one writer at a time on Out (lines never interleave)
}

// Run runs the mesh until ctx ends, then stops everything it started.
func Run(ctx context.Context, o Options) error {
	if o.Out == nil {
		o.Out = io.Discard
	}
	o.REST = cmp.Or(o.REST, "127.0.0.1:15000")
	o.GRPC = cmp.Or(o.GRPC, "127.0.0.1:0")
	o.Debounce = cmp.Or(o.Debounce, 100*time.Millisecond)
	o.ScrapeEvery = cmp.Or(o.ScrapeEvery, time.Second)
	o.MetricsWindow = cmp.Or(o.MetricsWindow, 10*time.Second)
	o.Grace = cmp.Or(o.Grace, 5*time.Second)
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("up: cannot find the causeway binary: %w", err)
		}
		o.Binary = exe
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	m := &Mesh{opts: o, log: lg, ports: newPortBook(), began: time.Now()}
	return m.run(ctx)
}

func (m *Mesh) printf(format string, args ...any) {
	m.outMu.Lock()
	defer m.outMu.Unlock()
	fmt.Fprintf(m.opts.Out, format+"\n", args...)
}

func (m *Mesh) run(ctx context.Context) error {
	dir := m.opts.Dir
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("up: -f %s: not a directory", dir)
	}
	lay, err := readLayout(dir)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	m.multi = len(lay.clusters) > 0
	for _, w := range lay.warnings {
		m.printf("  %s", w)
	}

	// A short path: unix socket paths are limited to 108 bytes.
	removeStaleRunDirs(m.log)
	if m.runDir, err = os.MkdirTemp("", runDirPrefix); err != nil {
		return err
	}
	defer os.RemoveAll(m.runDir)
	if err := os.WriteFile(filepath.Join(m.runDir, "up.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}

	// Deferred in this order so that cancel runs first and the goroutines
	// waited for can end, on every return path.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.ctx = ctx

	if m.multi {
		for _, lc := range lay.clusters {
			c, err := m.newCluster(lc.dir, &lc.cluster)
			if err != nil {
				return err
			}
			m.clusters = append(m.clusters, c)
		}
		m.links = lay.links
	} else {
		c, err := m.newCluster(dir, nil)
		if err != nil {
			return err
		}
		m.clusters = []*cluster{c}
	}
	// Every cluster's servers first; stopped last, after the children.
	for _, c := range m.clusters {
		stop, err := c.startServers(ctx, &wg)
		defer stop()
		if err != nil {
			return err
		}
	}
	if err := m.writeRegistry(); err != nil {
		return err
	}

	errs := make(chan error, len(m.clusters))
	for _, c := range m.clusters {
		go func() { errs <- c.run(ctx) }()
	}
	if m.multi {
		wg.Go(func() {
			if made := m.linkAll(ctx); made != nil {
				m.followLinks(ctx, made)
			}
		})
	}
	var runErr error
	for range m.clusters {
		if err := <-errs; err != nil && runErr == nil {
			runErr = err
			cancel()
		}
	}
	// Every cluster goroutine has returned: their children are ours now.
	n := 0
	for _, c := range m.clusters {
		n += len(c.instances)
	}
	m.printf("causeway up: stopping %d workloads", n)
	var swg sync.WaitGroup
	for _, c := range m.clusters {
		swg.Go(c.stopAll)
	}
	swg.Wait()
	if errors.Is(runErr, context.Canceled) {
		runErr = nil
	}
	return runErr
}

const runDirPrefix = "causeway-up-"

// removeStaleRunDirs deletes the run directories of earlier runs that were
// killed before they could clean up (SIGKILL): their up.pid names a process
// that no longer exists. Their children died with them (Pdeathsig).
func removeStaleRunDirs(lg *slog.Logger) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runDirPrefix+"*"))
	for _, d := range dirs {
		if pid, ok := runDirOwner(d); ok && !alive(pid) {
			lg.Info("up: removing the run directory of a run that did not stop cleanly", "dir", d, "pid", pid)
			_ = os.RemoveAll(d)
		}
	}
}

// runDirOwner reads the PID of the `causeway up` that made a run directory.
func runDirOwner(d string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(d, "up.pid"))
	if err != nil {
		return 0, false // not ours, or still being set up
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

func alive(pid int) bool { return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }
