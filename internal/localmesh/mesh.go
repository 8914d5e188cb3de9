package localmesh

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/workloadapi"
	"github.com/causeway-mesh/causeway/spec"
)

// Options configure Run.
type Options struct {
	// Dir is the folder of manifests; it is watched.
	Dir string
	// Binary is the causeway executable that runs sidecars and the
	// commands whose program is "causeway".
	Binary string
	// REST is the REST and SMI metrics API address; "" means
	// 127.0.0.1:15000, where `causeway stat` looks by default.
	REST string
	// GRPC is the config stream's address; "" means a free loopback port.
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

// Mesh is one run of `causeway up`.
type Mesh struct {
	opts   Options
	log    *slog.Logger
	td     spiffeid.TrustDomain
	runDir string
	absDir string // Dir made absolute: the children's working directory
	sock   string // Workload API socket path
	ctlID  spiffeid.ID

	attestor *pidAttestor
	srv      *control.Server
	grpcAddr string
	restAddr string

	// ctx ends when the run stops: waits for children give way to it.
	ctx context.Context

	outMu sync.Mutex // one writer at a time on Out (lines never interleave)

	// Owned by the DirSource goroutine (load, publish, reconcile).
	ports     *portBook
	pending   *local.Result // decoded by the last load, acted on by publish
	instances map[spec.Key]*instance
	lastSnap  *spec.Snapshot
	started   bool // the summary was printed
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
	m := &Mesh{opts: o, log: lg, attestor: newPIDAttestor(), ports: newPortBook(),
		instances: map[spec.Key]*instance{}}
	return m.run(ctx)
}

func (m *Mesh) printf(format string, args ...any) {
	m.outMu.Lock()
	defer m.outMu.Unlock()
	fmt.Fprintf(m.opts.Out, format+"\n", args...)
}

func (m *Mesh) run(ctx context.Context) error {
	// Diagnostics name files as the user wrote the folder; children run
	// in it, by absolute path.
	dir := m.opts.Dir
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("up: -f %s: not a directory", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	m.absDir = abs
	// The trust domain is fixed for the run: the CA is made for it. A Mesh
	// that cannot be read yet leaves it at cluster.local.
	objs, _, err := manifest.Read([]string{dir}, nil)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	res, _ := local.Decode(objs, local.Options{})
	if m.td, err = spiffeid.TrustDomainFromString(res.TrustDomain("cluster.local")); err != nil {
		m.td = spiffeid.RequireTrustDomainFromString("cluster.local")
	}
	m.ctlID = spiffeid.RequireFromSegments(m.td, "ns", controlNS, "sa", controlSA)

	// A short path: unix socket paths are limited to 108 bytes.
	removeStaleRunDirs(m.log)
	if m.runDir, err = os.MkdirTemp("", runDirPrefix); err != nil {
		return err
	}
	defer os.RemoveAll(m.runDir)
	if err := os.WriteFile(filepath.Join(m.runDir, "up.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	m.sock = filepath.Join(m.runDir, "workload.sock")

	// Deferred in this order so that cancel runs first and the goroutines
	// waited for can end, on every return path.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.ctx = ctx

	authority, err := ca.New(ctx, ca.Options{TrustDomain: m.td, Store: ca.DirStore{Dir: filepath.Join(m.runDir, "ca")}, Logger: m.log})
	if err != nil {
		return fmt.Errorf("up: CA: %w", err)
	}
	wg.Go(func() { _ = authority.Run(ctx) })

	wapi, err := workloadapi.New(workloadapi.Config{CA: authority, Attestor: m.attestor, Logger: m.log})
	if err != nil {
		return err
	}
	wl, err := workloadapi.Listen(m.sock)
	if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	wg.Go(func() { _ = wapi.Serve(wl) })
	defer wapi.Stop()

	ctlSVID, err := authority.NewSVIDSource(m.ctlID, 0)
	if err != nil {
		return err
	}
	m.srv = control.New(control.Options{Creds: control.MTLS(ctlSVID, authority, m.td), Logger: m.log})
	gl, err := net.Listen("tcp", m.opts.GRPC)
	if err != nil {
		return fmt.Errorf("up: config stream: %w", err)
	}
	m.grpcAddr = gl.Addr().String()
	wg.Go(func() { _ = m.srv.Serve(gl) })
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		m.srv.Stop(sctx)
	}()

	rl, err := net.Listen("tcp", m.opts.REST)
	if err != nil {
		return fmt.Errorf("up: REST API: %w (another `causeway up` or `causeway control` running? use --rest)", err)
	}
	m.restAddr = rl.Addr().String()
	agg := &metrics.Aggregator{Source: &metrics.HTTPSource{Targets: rest.ProxyTargets(m.srv)}, Window: m.opts.MetricsWindow}
	wg.Go(func() { agg.Run(ctx, m.opts.ScrapeEvery, func(error) {}) })
	hs := &http.Server{Handler: (&rest.API{Control: m.srv, Metrics: agg, Logger: m.log}).Handler(), ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() { _ = hs.Serve(rl) })
	defer hs.Close()

	src := &control.DirSource{Dir: dir, Load: m.load, Debounce: m.opts.Debounce, Logger: m.log}
	srcDone := make(chan error, 1)
	go func() { srcDone <- src.Run(ctx, m.publish) }()

	var runErr error
	select {
	case <-ctx.Done():
		runErr = <-srcDone
	case runErr = <-srcDone:
		cancel()
	}
	// The DirSource goroutine has returned: the instances are ours now.
	m.printf("causeway up: stopping %d workloads", len(m.instances))
	m.stopAll()
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
		data, err := os.ReadFile(filepath.Join(d, "up.pid"))
		if err != nil {
			continue // not ours, or still being set up
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			lg.Info("up: removing the run directory of a run that did not stop cleanly", "dir", d, "pid", pid)
			_ = os.RemoveAll(d)
		}
	}
}
