package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/adapters/kube"
	"github.com/causeway-mesh/causeway/control"
	controlrest "github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
)

// fedFlags turn on federation in `causeway control` (DESIGN.md §7).
type fedFlags struct {
	cluster    string
	listen     string
	advertise  []string
	gateways   []string
	gatewaySvc string
	fedSvc     string
	gatewayID  string
	heartbeat  time.Duration
	probe      time.Duration
	state      string
	secret     string
}

func (f *fedFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.cluster, "cluster", "", "this cluster's name for linked clusters (imports of ours are <service>-<cluster> there); required with --federation-listen")
	fl.StringVar(&f.listen, "federation-listen", "", "serve the federation stream to linked clusters on this address; empty disables federation")
	fl.StringSliceVar(&f.advertise, "federation-advertise", nil, "federation addresses put in peering tokens (default: the --federation-listen address)")
	fl.StringVar(&f.fedSvc, "federation-service", "", "follow the federation stream's Service (NAMESPACE/NAME[:PORT]) and put its load balancer addresses in peering tokens; --federation-advertise, when set, wins")
	fl.StringSliceVar(&f.gateways, "gateway-addr", nil, "this cluster's east-west gateway address(es) host:port, sent to linked clusters")
	fl.StringVar(&f.gatewaySvc, "gateway-service", "", "follow this cluster's east-west gateway Service (NAMESPACE/NAME[:PORT]) and send its load balancer addresses to linked clusters as they change; --gateway-addr, when set, wins")
	fl.StringVar(&f.gatewayID, "gateway-id", "", "SPIFFE ID the gateway proves (default spiffe://<trust-domain>/ns/causeway-system/sa/causeway-gateway)")
	fl.DurationVar(&f.heartbeat, "federation-heartbeat", 5*time.Second, "federation heartbeat; a peer silent for 3 heartbeats is failed")
	fl.DurationVar(&f.probe, "gateway-probe-interval", 5*time.Second, "how often linked clusters' gateways are probed")
	fl.StringVar(&f.state, "federation-state", "", "keep links in this file (0600) across restarts, where `identity serve --federation-state` follows the peers' bundles; empty: in memory, peers must link again after a restart")
	fl.StringVar(&f.secret, "federation-secret", "", "keep links in this Kubernetes Secret (NAMESPACE/NAME) instead of --federation-state; node agents (`identity serve --federation-secret`) follow the peers' bundles from it")
}

// federationStore is where links are kept: the file, the Secret (reached
// through kubeconfig, else as kubectl finds its cluster, else in-cluster),
// or nowhere (nil). Both `causeway control` (writes) and `causeway identity
// serve` (reads) name it with these flags.
func federationStore(file, secret, kubeconfig string) (federation.Store, error) {
	switch {
	case file != "" && secret != "":
		return nil, usageErr("--federation-state and --federation-secret are exclusive")
	case file != "":
		return federation.FileStore{Path: file}, nil
	case secret == "":
		return nil, nil
	}
	ns, name, ok := strings.Cut(secret, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return nil, usageErr("--federation-secret %q: want NAMESPACE/NAME", secret)
	}
	kc, err := kubeClient(kubeconfig)
	if err != nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("--federation-secret %s: %w", secret, err)}
	}
	return federation.NewSecretStore(kc.CoreV1(), ns, name)
}

// federationRun is a running federation, or the zero value when it is off.
type federationRun struct {
	links *federation.Links
	stop  func()
}

// rest returns what the REST API serves /api/v1/links from; nil (and so
// 503) when federation is off. A nil *Links must not become a non-nil
// interface.
func (r federationRun) rest() controlrest.Links {
	if r.links == nil {
		return nil
	}
	return r.links
}

// source wraps src so every accepted load tells the peers what this
// cluster exports (the imports were merged by the loader already).
func (r federationRun) source(src control.Source) control.Source {
	if r.links == nil {
		return src
	}
	return &control.Observed{Source: src, Loaded: r.links.SetLocal}
}

// startFederation serves the federation stream when --federation-listen is
// set. It needs the local CA (c, or opened here when the config stream does
// not use it): the CA's bundle goes to peers and is resent on rotation. The
// peers' bundles are kept in a bundle.Set in this process and shown on
// GET /api/v1/snapshot (links[].bundle); they reach workloads through the
// store (--federation-state or --federation-secret), which the Workload API
// process (`identity serve`) follows.
func startFederation(ctx context.Context, f controlFlags, td spiffeid.TrustDomain, c *ca.CA, log *slog.Logger, errc chan<- error) (federationRun, error) {
	ff := f.fed
	if ff.listen == "" {
		if ff.cluster != "" || len(ff.gateways) > 0 || ff.gatewaySvc != "" || ff.fedSvc != "" || ff.state != "" || ff.secret != "" {
			return federationRun{}, usageErr("control: --cluster, --gateway-addr, --gateway-service, --federation-service, --federation-state and --federation-secret need --federation-listen")
		}
		return federationRun{}, nil
	}
	if ff.cluster == "" {
		return federationRun{}, usageErr("control: --federation-listen needs --cluster NAME")
	}
	if f.spiffeSock != "" {
		return federationRun{}, usageErr("control: --federation-listen needs the local CA (--ca-dir or --ca-secret), not --spiffe-socket")
	}
	var gwID spiffeid.ID
	var err error
	if ff.gatewayID != "" {
		if gwID, err = spiffeid.FromString(ff.gatewayID); err != nil {
			return federationRun{}, usageErr("control: --gateway-id %q: %v", ff.gatewayID, err)
		}
	} else if gwID, err = spiffeid.FromSegments(td, "ns", "causeway-system", "sa", "causeway-gateway"); err != nil {
		return federationRun{}, err
	}
	gwRef, err := parseFollow("--gateway-service", ff.gatewaySvc, len(ff.gateways) > 0)
	if err != nil {
		return federationRun{}, err
	}
	fedRef, err := parseFollow("--federation-service", ff.fedSvc, len(ff.advertise) > 0)
	if err != nil {
		return federationRun{}, err
	}
	store, err := federationStore(ff.state, ff.secret, f.kubeconfig)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return federationRun{}, err
		}
		return federationRun{}, usageErr("control: %v", err)
	}
	stopCA := func() {}
	if c == nil { // --insecure: the config stream did not open the CA
		var run func(context.Context) error
		if c, run, err = f.openCA(ctx, log); err != nil {
			return federationRun{}, err
		}
		stopCA = startCA(ctx, run, log)
	}
	id, err := spiffeid.FromSegments(td, "ns", "causeway", "sa", "control")
	if err != nil {
		stopCA()
		return federationRun{}, err
	}
	svid, err := c.NewSVIDSource(id, 0)
	if err != nil {
		stopCA()
		return federationRun{}, fmt.Errorf("control: federation SVID for %s: %w", id, err)
	}
	lis, err := net.Listen("tcp", ff.listen)
	if err != nil {
		stopCA()
		return federationRun{}, &exitError{code: 1, err: fmt.Errorf("control: --federation-listen: %w", err)}
	}
	advertise := ff.advertise
	if len(advertise) == 0 {
		advertise = []string{lis.Addr().String()}
	}
	// Both are legal (a cluster that only imports needs no gateway; tokens
	// may be made for peers on the same host) but, in a cluster, mean the
	// per-cluster addresses were not set (deploy/base's causeway-cluster).
	for _, a := range advertise {
		if fedRef != nil {
			break // replaced once the load balancer has an address
		}
		if host, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				log.Warn("federation: peering tokens will carry an unspecified address that peers cannot dial; set --federation-advertise", "advertise", a)
			}
		}
	}
	switch {
	case len(ff.gateways) > 0 && ff.gatewaySvc != "":
		log.Info("federation: --gateway-addr is set, so --gateway-service is not followed", "gateways", ff.gateways)
	case len(ff.gateways) == 0 && ff.gatewaySvc == "":
		log.Warn("federation: no --gateway-addr or --gateway-service: linked clusters get this cluster's exports without an endpoint to reach them")
	}
	if len(ff.advertise) > 0 && ff.fedSvc != "" {
		log.Info("federation: --federation-advertise is set, so --federation-service is not followed", "advertise", ff.advertise)
	}
	var lbClient kubernetes.Interface
	if gwRef != nil || fedRef != nil {
		kc, err := kubeClient(f.kubeconfig)
		if err != nil {
			lis.Close()
			stopCA()
			return federationRun{}, &exitError{code: 1, err: fmt.Errorf("control: --gateway-service, --federation-service: %w", err)}
		}
		lbClient = kc
	}
	links, err := federation.New(federation.Options{Cluster: ff.cluster, TrustDomain: td, SVID: svid, Bundle: c,
		Federated: bundle.NewSet(), Advertise: advertise, GatewayAddrs: ff.gateways, GatewayID: gwID,
		Heartbeat: ff.heartbeat, ProbeInterval: ff.probe, Store: store, Logger: log})
	if err != nil {
		lis.Close()
		stopCA()
		if store != nil {
			return federationRun{}, &exitError{code: 1, err: fmt.Errorf("control: %w", err)}
		}
		return federationRun{}, usageErr("control: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	var follows []lbFollow
	if gwRef != nil {
		follows = append(follows, lbFollow{flag: "--gateway-service", ref: *gwRef, defaultPort: kube.GatewayPortName, apply: links.SetGateways,
			applied: "gateway addresses sent to linked clusters",
			empty:   "the gateway Service has no address (load balancer pending, or Service deleted): linked clusters cannot reach this cluster's exports"})
	}
	if fedRef != nil {
		follows = append(follows, lbFollow{flag: "--federation-service", ref: *fedRef, defaultPort: kube.FederationPortName, apply: links.SetAdvertise,
			applied: "federation addresses put in new peering tokens",
			empty:   "the federation Service has no address (load balancer pending, or Service deleted): new peering tokens carry the listener's address"})
	}
	waitFollows := startFollows(runCtx, lbClient, follows, log, errc)
	go func() {
		if err := links.Serve(lis); err != nil {
			errc <- fmt.Errorf("federation: %w", err)
		}
		done <- struct{}{}
	}()
	go func() { _ = links.Run(runCtx); done <- struct{}{} }()
	log.Info("federation started", "cluster", ff.cluster, "addr", lis.Addr().String(), "advertise", advertise, "gateways", ff.gateways)
	return federationRun{links: links, stop: func() {
		cancel()
		links.Close()
		<-done
		<-done
		waitFollows()
		stopCA()
	}}, nil
}
