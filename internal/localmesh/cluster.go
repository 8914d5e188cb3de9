package localmesh

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/workloadapi"
	"github.com/causeway-mesh/causeway/spec"
)

// cluster is one control plane with everything it serves: a CA and
// Workload API for its trust domain, the config stream and REST API, the
// sidecars and commands of its Workloads and, with several clusters, its
// east-west gateway and federation.
type cluster struct {
	m      *Mesh
	name   string         // "" in a single-cluster folder
	def    *local.Cluster // the Cluster object; nil in a single-cluster folder
	dir    string         // as the user wrote it: diagnostics name files so
	absDir string         // the children's working directory
	td     spiffeid.TrustDomain
	runDir string
	sock   string // Workload API socket path
	ctlID  spiffeid.ID

	attestor  *pidAttestor
	authority *ca.CA
	// bundles are the linked clusters' trust bundles, written by
	// federation and handed to every workload as federated_bundles.
	bundles  *bundle.Set
	srv      *control.Server
	grpcAddr string
	restAddr string
	fed      federator // nil in a single-cluster folder
	fedAddr  string    // the federation stream's address
	fedErr   error     // why fed is nil in a multi-cluster run

	// ready is closed once the first good snapshot is served, the
	// workloads are started and (with several clusters) the gateway is
	// ready: links are made after that.
	ready chan struct{}
	// workloads is how many ran when ready closed (read by linkAll after
	// it, while the run goroutine may already be changing instances).
	workloads int

	// Owned by the cluster's run goroutine (load, publish, reconcile);
	// read by stopAll once it has returned.
	pending   *local.Result
	instances map[spec.Key]*instance
	gateway   *gatewayProc
	lastSnap  *spec.Snapshot
	started   bool
}

// newCluster prepares a cluster for folder dir. def is its Cluster object,
// nil for a single-cluster folder, whose trust domain comes from its Mesh
// (or cluster.local).
func (m *Mesh) newCluster(dir string, def *local.Cluster) (*cluster, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	c := &cluster{m: m, def: def, dir: dir, absDir: abs, attestor: newPIDAttestor(),
		bundles: bundle.NewSet(), instances: map[spec.Key]*instance{}, ready: make(chan struct{})}
	tdName := ""
	if def != nil {
		c.name, tdName = def.Name, def.TrustDomain
	} else {
		// The trust domain is fixed for the run: the CA is made for it. A
		// Mesh that cannot be read yet leaves it at cluster.local.
		objs, _, err := manifest.Read([]string{dir}, nil)
		if err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		res, _ := local.Decode(objs, local.Options{})
		tdName = res.TrustDomain("cluster.local")
	}
	if c.td, err = spiffeid.TrustDomainFromString(tdName); err != nil {
		c.td = spiffeid.RequireTrustDomainFromString("cluster.local")
	}
	c.ctlID = spiffeid.RequireFromSegments(c.td, "ns", controlNS, "sa", controlSA)
	c.runDir = m.runDir
	if c.name != "" {
		c.runDir = filepath.Join(m.runDir, c.name)
		if err := os.Mkdir(c.runDir, 0o700); err != nil {
			return nil, err
		}
	}
	c.sock = filepath.Join(c.runDir, "workload.sock")
	if def != nil {
		if c.gateway, err = c.newGatewayProc(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// label prefixes a cluster's lines when there are several.
func (c *cluster) label() string {
	if c.name == "" {
		return ""
	}
	return "[" + c.name + "] "
}

func (c *cluster) printf(format string, args ...any) {
	c.m.printf(c.label()+format, args...)
}

// startServers starts the CA, the Workload API, the config stream, the
// REST API and federation. stop ends them; it is never nil, and stops what
// was started even when err is not nil.
func (c *cluster) startServers(ctx context.Context, wg *sync.WaitGroup) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	lg := c.m.log.With("cluster", c.name)
	c.authority, err = ca.New(ctx, ca.Options{TrustDomain: c.td, Store: ca.DirStore{Dir: filepath.Join(c.runDir, "ca")}, Logger: lg})
	if err != nil {
		return stop, fmt.Errorf("up: %sCA: %w", c.label(), err)
	}
	wg.Go(func() { _ = c.authority.Run(ctx) })

	wapi, err := workloadapi.New(workloadapi.Config{CA: c.authority, Attestor: c.attestor, Federated: c.bundles, Logger: lg})
	if err != nil {
		return stop, err
	}
	wl, err := workloadapi.Listen(c.sock)
	if err != nil {
		return stop, fmt.Errorf("up: %s%w", c.label(), err)
	}
	wg.Go(func() { _ = wapi.Serve(wl) })
	stops = append(stops, wapi.Stop)

	ctlSVID, err := c.authority.NewSVIDSource(c.ctlID, 0)
	if err != nil {
		return stop, err
	}
	c.srv = control.New(control.Options{Creds: control.MTLS(ctlSVID, c.authority, c.td), Logger: lg})
	grpcAddr := c.m.opts.GRPC
	if c.name != "" {
		grpcAddr = "127.0.0.1:0"
	}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return stop, fmt.Errorf("up: %sconfig stream: %w", c.label(), err)
	}
	c.grpcAddr = gl.Addr().String()
	wg.Go(func() { _ = c.srv.Serve(gl) })
	stops = append(stops, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c.srv.Stop(sctx)
	})

	restAddr := c.m.opts.REST
	if c.def != nil {
		restAddr = "127.0.0.1:" + strconv.Itoa(int(c.def.AdminPort)) // 0: a free port
	}
	rl, err := net.Listen("tcp", restAddr)
	if err != nil {
		hint := "another `causeway up` or `causeway control` running? use --rest"
		if c.def != nil {
			hint = "another `causeway up` running? change spec.adminPort of Cluster " + c.name
		}
		return stop, fmt.Errorf("up: %sREST API: %w (%s)", c.label(), err, hint)
	}
	c.restAddr = rl.Addr().String()
	agg := &metrics.Aggregator{Source: &metrics.HTTPSource{Targets: rest.ProxyTargets(c.srv)}, Window: c.m.opts.MetricsWindow}
	wg.Go(func() { agg.Run(ctx, c.m.opts.ScrapeEvery, func(error) {}) })
	hs := &http.Server{Handler: (&rest.API{Control: c.srv, Metrics: agg, Logger: lg}).Handler(), ReadHeaderTimeout: 5 * time.Second}
	wg.Go(func() { _ = hs.Serve(rl) })
	stops = append(stops, func() { hs.Close() })

	if c.m.multi {
		fed, fstop, err := newFederator(ctx, c, wg)
		if err != nil {
			// The cluster still runs on its own; the summary says why it
			// is not linked.
			c.fedErr = err
		} else {
			c.fed = fed
			stops = append(stops, fstop)
		}
	}
	return stop, nil
}

// run loads and serves the cluster's folder until ctx ends: the first
// load, then one per settled burst of edits and one per change of the
// imports from linked clusters. It owns the loads, publishes and the
// children's reconciliation, in that order, on this goroutine.
func (c *cluster) run(ctx context.Context) error {
	var kick <-chan struct{}
	if c.fed != nil {
		kick = c.fed.Changes()
	}
	// control.DirSource watches the folder (subfolders included, editors'
	// dot-files not) and loads on this goroutine, for edits and for import
	// changes alike, so loads and publishes never race.
	src := &control.DirSource{Dir: c.dir, Debounce: c.m.opts.Debounce, Reload: kick, Logger: c.m.log, Load: c.load}
	return src.Run(ctx, c.publish)
}

// markReady is called once after the first good snapshot was served and
// the children started.
func (c *cluster) markReady() {
	if c.m.multi {
		if err := c.startGateway(); err != nil {
			c.printf("gateway: %v; other clusters cannot reach this one", err)
		}
	}
	c.workloads = len(c.instances)
	close(c.ready)
}

func (c *cluster) stopAll() {
	all := make([]*instance, 0, len(c.instances))
	for _, inst := range c.instances {
		all = append(all, inst)
	}
	c.stopInstances(all)
	c.instances = map[spec.Key]*instance{}
	if c.gateway != nil && c.gateway.proc != nil {
		c.gateway.proc.stop(c.m.opts.Grace)
	}
}

// appLabel prefixes a command's output lines: its workload's name, with
// its cluster's when there are several.
func (c *cluster) appLabel(workload string) string {
	if c.name == "" {
		return workload
	}
	return c.name + "/" + workload
}
