package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
)

// proxyFlags are how `causeway proxy` is told where its identity and its
// config come from. The same command is the sidecar of `causeway up` and of
// an injected pod.
type proxyFlags struct {
	bootstrap    string
	spiffeSocket string
	control      string
	controlID    string
	node         string
	services     []string
	svidWait     time.Duration
}

func newProxyCmd() *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy --config FILE [--control ADDR --control-id ID] [--spiffe-socket ADDR]",
		Short: "Run the Causeway sidecar proxy",
		Long: `Run the Causeway data plane: inbound mesh listener, outbound HTTP forward
proxy and fixed upstream ports, admin server (/ready /live /metrics /config /tap).

The bootstrap file (proxy/doc.go; sample: proxy/testdata/bootstrap-example.yaml)
says where to listen. The compiled config comes either from the bootstrap itself
(static, for tests and debugging) or, with --control, from the control plane's
config stream over mTLS: the proxy ACKs what it applies, NACKs what it refuses,
keeps serving its last good config while the control plane is away and
reconnects with backoff. The SVID and trust bundles come only from a SPIFFE
Workload API (--spiffe-socket, or the bootstrap's workloadAPI), so the same
proxy runs against Causeway's or a SPIRE agent's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runProxy(ctx, f, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.bootstrap, "config", "", "bootstrap file (YAML or JSON)")
	fl.StringVar(&f.spiffeSocket, "spiffe-socket", "", "SPIFFE Workload API address (unix:///path); overrides the bootstrap's workloadAPI")
	fl.StringVar(&f.control, "control", "", "control plane gRPC address; the config then comes from its stream")
	fl.StringVar(&f.controlID, "control-id", "", "the control plane's SPIFFE ID (required with --control)")
	fl.StringVar(&f.node, "node", "", "node ID reported to the control plane (default: the host name)")
	fl.StringArrayVar(&f.services, "service", nil, "a service this node's workload backs, ns/name (repeatable)")
	fl.DurationVar(&f.svidWait, "svid-wait", 30*time.Second, "how long to wait for the first SVID")
	return cmd
}

func runProxy(ctx context.Context, f proxyFlags, lg *slog.Logger) error {
	if f.bootstrap == "" {
		return usageErr("proxy: --config is required")
	}
	var controlID spiffeid.ID
	if f.control != "" {
		id, err := spiffeid.FromString(f.controlID)
		if err != nil {
			return usageErr("proxy: --control-id %q: %v", f.controlID, err)
		}
		controlID = id
	}
	node := spec.Node{ID: f.node}
	for _, s := range f.services {
		k, err := proxy.ParseKey(s)
		if err != nil {
			return usageErr("proxy: --service %q: %v", s, err)
		}
		node.Services = append(node.Services, k)
	}
	if node.ID == "" {
		node.ID, _ = os.Hostname()
	}
	b, err := proxy.LoadBootstrap(f.bootstrap)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	socket := f.spiffeSocket
	if socket == "" {
		socket = b.WorkloadAPI
	}
	if f.control != "" && socket == "" {
		return usageErr("proxy: --control needs an SVID: give --spiffe-socket or workloadAPI in the bootstrap")
	}

	opts := proxy.Options{Logger: lg}
	var src *workloadapi.X509Source
	if socket != "" {
		// The first SVID may take a moment (a SPIRE agent syncs its entries
		// first; `causeway up` registers this PID right after starting it):
		// go-spiffe retries until the deadline.
		sctx, cancel := context.WithTimeout(ctx, f.svidWait)
		src, err = workloadapi.NewX509Source(sctx, workloadapi.WithClientOptions(workloadapi.WithAddr(socket)))
		cancel()
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("proxy: SVID from %s: %w", socket, err)}
		}
		defer src.Close()
		opts.SVIDs, opts.Bundles = src, src
	}
	p := proxy.New(b, opts)
	if err := p.Start(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("proxy: %w", err)}
	}
	defer p.Close()

	if f.control == "" {
		lg.Info("proxy started", "admin", b.Admin, "inbound", b.Inbound.Listen, "httpProxy", b.Outbound.HTTPProxy, "config", "static")
		<-ctx.Done()
		lg.Info("proxy stopping")
		return nil
	}
	svid, err := src.GetX509SVID()
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("proxy: %w", err)}
	}
	// The control plane binds the node to the SVID it presents.
	node.Identity = svid.ID
	admin := b.Admin
	if a := p.AdminAddr(); a != nil {
		admin = a.String() // the bound address, when the bootstrap said port 0
	}
	cl, err := configsource.New(configsource.Options{
		Addr: f.control, Node: node, AdminAddress: admin,
		Creds:   configsource.MTLS(src, src, tlsconfig.AuthorizeID(controlID)),
		Apply:   p.Apply,
		Backoff: configsource.Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second},
		Logger:  lg,
	})
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("proxy: %w", err)}
	}
	lg.Info("proxy started", "node", node.ID, "identity", svid.ID.String(), "admin", admin,
		"inbound", b.Inbound.Listen, "control", f.control)
	if err := cl.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return &exitError{code: 1, err: fmt.Errorf("proxy: config stream: %w", err)}
	}
	lg.Info("proxy stopping")
	return nil
}
