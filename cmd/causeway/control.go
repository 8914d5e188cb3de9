package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/kube"
	"github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/control/metrics"
	controlrest "github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/spec"
)

type controlFlags struct {
	manifests   string
	kube        bool
	kubeconfig  string
	leaseName   string
	listen      string
	rest        string
	insecure    bool
	spiffeSock  string
	debounce    time.Duration
	scrapeEvery time.Duration
	ca          caFlags
	webhook     webhookFlags
	caShared    sharedCAFlags // --ca-secret, --ca-lease, --ca-follow-interval
	fed         fedFlags      // --cluster, --federation-listen, --gateway-addr... (control_federation.go)
}

func newControlCmd() *cobra.Command {
	var f controlFlags
	cmd := &cobra.Command{
		Use:   "control (--manifests DIR | --kube [--kubeconfig FILE]) [--listen ADDR] [--rest ADDR] [--insecure]",
		Short: "Run the control plane: watch manifests, stream config to proxies, serve the REST and SMI metrics API",
		Long: `Run Causeway's control plane on a directory of Kubernetes and SMI manifests
(--manifests) or on a Kubernetes cluster (--kube).

The directory is watched; every change is reloaded after a short quiet
period. With --kube, shared informers watch the SMI and Causeway CRDs and the
core kinds (in-cluster config, or --kubeconfig); replicas elect a leader with
a Lease (--lease-name in $POD_NAMESPACE, this replica named $POD_NAME), and
only the leader writes status conditions and Events. Either way, an invalid
change is reported (log, GET /api/v1/diagnostics) and never replaces the last
good snapshot. Proxies connect over gRPC (--listen)
and get only the config they need; the REST API (--rest) serves the model,
each proxy's sync state, and the SMI TrafficMetrics API aggregated from the
proxies' /metrics.

Proxies authenticate with X.509-SVIDs over mTLS. The control plane's own SVID
comes from a SPIFFE Workload API (--spiffe-socket, e.g. a SPIRE agent) or from
the local CA in --ca-dir, or in the Kubernetes Secret --ca-secret that
replicas share. The local CA rotates on schedule: a successor root is
prepared (trusted, not signing) at half of --ca-ttl and signs from five
sixths, the old root trusted for --rotation-overlap after that. With
--ca-secret only the holder of the --ca-lease Lease rotates; every replica
reads the Secret every --ca-follow-interval and serves what it holds.
--insecure serves plaintext and trusts whatever
identity a proxy claims: for loopback experiments only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runControl(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.manifests, "manifests", "", "directory of manifests to serve (watched)")
	fl.BoolVar(&f.kube, "kube", false, "read a Kubernetes cluster instead of --manifests (in-cluster config unless --kubeconfig)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file for --kube (implies --kube)")
	fl.StringVar(&f.leaseName, "lease-name", "causeway-control-plane", "leader-election Lease in $POD_NAMESPACE for --kube; empty disables election (and status writes)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:15010", "gRPC address for the config stream")
	fl.StringVar(&f.rest, "rest", "127.0.0.1:15000", "HTTP address for the REST and SMI metrics API; empty disables it")
	fl.BoolVar(&f.insecure, "insecure", false, "plaintext gRPC, trusting proxies' claimed identities (INSECURE: loopback tests only)")
	fl.StringVar(&f.spiffeSock, "spiffe-socket", "", "SPIFFE Workload API address (unix:///path) for the control plane's SVID; default: the CA in --ca-dir")
	fl.DurationVar(&f.debounce, "debounce", 100*time.Millisecond, "quiet period after a change before the manifests are reloaded")
	fl.DurationVar(&f.scrapeEvery, "scrape-interval", 2*time.Second, "how often proxies' /metrics are scraped for the SMI metrics API")
	f.ca.register(cmd)
	f.webhook.register(fl)
	f.caShared.register(fl)
	f.fed.register(fl)
	return cmd
}

func runControl(cmd *cobra.Command, f controlFlags) error {
	f.kube = f.kube || f.kubeconfig != ""
	switch {
	case f.kube && f.manifests != "":
		return usageErr("control: --manifests and --kube are exclusive")
	case !f.kube && f.manifests == "":
		return usageErr("control: --manifests DIR or --kube is required")
	case !f.kube:
		if fi, err := os.Stat(f.manifests); err != nil || !fi.IsDir() {
			return usageErr("control: --manifests %s: not a directory", f.manifests)
		}
	}
	td, err := spiffeid.TrustDomainFromString(f.ca.trustDomain)
	if err != nil {
		return usageErr("control: --trust-domain %q: %v", f.ca.trustDomain, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	creds, localCA, closeCreds, err := controlCreds(ctx, f, td, log)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	defer closeCreds()

	srv := control.New(control.Options{Creds: creds, Logger: log})
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("control: --listen: %w", err)}
	}
	errc := make(chan error, 6)
	fed, err := startFederation(ctx, f, td, localCA, log, errc)
	if err != nil {
		return err
	}
	if fed.stop != nil {
		defer fed.stop()
	}
	src, err := controlSource(f, td, fed, log)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	go func() { errc <- srv.Serve(lis) }()
	go func() { errc <- src.Run(ctx, srv.Publish) }()
	log.Info("control plane started", "manifests", f.manifests, "kube", f.kube, "grpc", lis.Addr().String(), "insecure", f.insecure)

	var httpSrv *http.Server
	if f.rest != "" {
		agg := &metrics.Aggregator{Source: &metrics.HTTPSource{Targets: controlrest.ProxyTargets(srv)}}
		go agg.Run(ctx, f.scrapeEvery, func(err error) { log.Debug("control: metrics scrape", "err", err) })
		httpSrv = &http.Server{Addr: f.rest, Handler: (&controlrest.API{Control: srv, Metrics: agg, Links: fed.rest(), Logger: log}).Handler(),
			ReadHeaderTimeout: 5 * time.Second}
		restLis, err := net.Listen("tcp", f.rest)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("control: --rest: %w", err)}
		}
		go func() { errc <- httpSrv.Serve(restLis) }()
		log.Info("REST API started", "addr", restLis.Addr().String())
	}

	var kubeCfg *rest.Config
	if f.kube && f.webhook.listen != "" {
		if kubeCfg, err = kubeRESTConfig(f.kubeconfig); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("control: kubernetes config: %w", err)}
		}
	}
	whSrv, err := startWebhook(ctx, f.webhook, kubeCfg, log, errc)
	if err != nil {
		return err
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("control plane stopping")
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if httpSrv != nil {
		_ = httpSrv.Shutdown(stopCtx)
	}
	if whSrv != nil {
		_ = whSrv.Shutdown(stopCtx)
	}
	srv.Stop(stopCtx)
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return &exitError{code: 1, err: fmt.Errorf("control: %w", runErr)}
	}
	return nil
}

// controlCreds picks the gRPC transport: plaintext with --insecure, else
// mTLS with an SVID from the Workload API or from the local CA, which it
// returns for federation (nil when not opened).
func controlCreds(ctx context.Context, f controlFlags, td spiffeid.TrustDomain, log *slog.Logger) (credentials.TransportCredentials, *ca.CA, func(), error) {
	if f.insecure {
		log.Warn("control: --insecure: plaintext config stream, proxies' identities are not verified")
		return nil, nil, func() {}, nil
	}
	if f.spiffeSock != "" {
		src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(f.spiffeSock)))
		if err != nil {
			return nil, nil, nil, fmt.Errorf("control: --spiffe-socket %s: %w", f.spiffeSock, err)
		}
		return control.MTLS(src, src, td), nil, func() { _ = src.Close() }, nil
	}
	ca, runCA, err := f.openCA(ctx, log)
	if err != nil {
		return nil, nil, nil, err
	}
	// Rotation (or, off the Lease, following the replica that rotates)
	// runs for as long as the config stream does.
	stopCA := startCA(ctx, runCA, log)
	id, err := spiffeid.FromSegments(td, "ns", "causeway", "sa", "control")
	if err != nil {
		stopCA()
		return nil, nil, nil, err
	}
	svid, err := ca.NewSVIDSource(id, 0)
	if err != nil {
		stopCA()
		return nil, nil, nil, fmt.Errorf("control: SVID for %s: %w", id, err)
	}
	return control.MTLS(svid, ca, td), ca, stopCA, nil
}

// controlSource is the one input of this control plane: the manifest
// directory, or the cluster through adapters/kube's Watcher. Both feed the
// same pipeline of translators.
//
// With federation on, imports from linked clusters join every load before
// spec.Build (so manifests may name them), a change of the imports loads
// again, and each accepted load tells the peers what this cluster exports.
func controlSource(f controlFlags, td spiffeid.TrustDomain, fed federationRun, log *slog.Logger) (control.Source, error) {
	popts := pipeline.Options{TrustDomain: td.Name()}
	var reload <-chan struct{}
	if fed.links != nil {
		popts.Imports, reload = fed.links.Imports, fed.links.Changes()
	}
	if !f.kube {
		return fed.source(&control.DirSource{Dir: f.manifests, Debounce: f.debounce, Logger: log, Load: control.ManifestLoader(popts), Reload: reload}), nil
	}
	var cfg *rest.Config
	var err error
	if f.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", f.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("control: kubernetes config: %w", err)
	}
	w, err := kube.NewWatcher(kube.WatchOptions{
		Config:   cfg,
		Settle:   f.debounce,
		Logger:   log,
		Election: kube.Election{Namespace: cmp.Or(os.Getenv("POD_NAMESPACE"), "causeway-system"), LeaseName: f.leaseName, Identity: os.Getenv("POD_NAME")},
		Reload:   reload,
		Translate: func(objs []adapters.Object) (*spec.Snapshot, spec.Diagnostics) {
			snap, diags, _ := pipeline.Build(objs, popts)
			return snap, diags
		},
	})
	if err != nil {
		return nil, fmt.Errorf("control: kubernetes watcher: %w", err)
	}
	return fed.source(control.ServeFunc(w.Serve)), nil
}
