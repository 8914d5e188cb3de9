package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/spf13/pflag"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	controlrest "github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
)

// fedFlags turn on federation in `causeway control` (DESIGN.md §7).
type fedFlags struct {
	cluster   string
	listen    string
	advertise []string
	gateways  []string
	gatewayID string
	heartbeat time.Duration
	probe     time.Duration
	state     string
}

func (f *fedFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.cluster, "cluster", "", "this cluster's name for linked clusters (imports of ours are <service>-<cluster> there); required with --federation-listen")
	fl.StringVar(&f.listen, "federation-listen", "", "serve the federation stream to linked clusters on this address; empty disables federation")
	fl.StringSliceVar(&f.advertise, "federation-advertise", nil, "federation addresses put in peering tokens (default: the --federation-listen address)")
	fl.StringSliceVar(&f.gateways, "gateway-addr", nil, "this cluster's east-west gateway address(es) host:port, sent to linked clusters")
	fl.StringVar(&f.gatewayID, "gateway-id", "", "SPIFFE ID the gateway proves (default spiffe://<trust-domain>/ns/causeway-system/sa/causeway-gateway)")
	fl.DurationVar(&f.heartbeat, "federation-heartbeat", 5*time.Second, "federation heartbeat; a peer silent for 3 heartbeats is failed")
	fl.DurationVar(&f.probe, "gateway-probe-interval", 5*time.Second, "how often linked clusters' gateways are probed")
	fl.StringVar(&f.state, "federation-state", "", "keep links in this file (0600) across restarts; empty: in memory, peers must link again after a restart")
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
// GET /api/v1/snapshot (links[].bundle).
func startFederation(ctx context.Context, f controlFlags, td spiffeid.TrustDomain, c *ca.CA, log *slog.Logger, errc chan<- error) (federationRun, error) {
	ff := f.fed
	if ff.listen == "" {
		if ff.cluster != "" || len(ff.gateways) > 0 {
			return federationRun{}, usageErr("control: --cluster and --gateway-addr need --federation-listen")
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
	links, err := federation.New(federation.Options{Cluster: ff.cluster, TrustDomain: td, SVID: svid, Bundle: c,
		Federated: bundle.NewSet(), Advertise: advertise, GatewayAddrs: ff.gateways, GatewayID: gwID,
		Heartbeat: ff.heartbeat, ProbeInterval: ff.probe, StateFile: ff.state, Logger: log})
	if err != nil {
		lis.Close()
		stopCA()
		if ff.state != "" {
			return federationRun{}, &exitError{code: 1, err: fmt.Errorf("control: %w", err)}
		}
		return federationRun{}, usageErr("control: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
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
		stopCA()
	}}, nil
}
