package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/proxy/sidecar"
)

// newProxyCmd is the sidecar: `causeway up`'s, an injected pod's, or one
// started by hand. cmd/causeway-proxy is the same (proxy/sidecar.Run) in a
// binary that links only the data plane, for a smaller footprint.
func newProxyCmd() *cobra.Command {
	var f sidecar.Flags
	cmd := &cobra.Command{
		Use:   "proxy --config FILE [--control ADDR --control-id ID] [--spiffe-socket ADDR [--spiffe-token-file FILE]]",
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
proxy runs against Causeway's or a SPIRE agent's. With --spiffe-token-file the
proxy proves who it is to Causeway's node agent with its pod's projected
ServiceAccount token (identity serve --attest tokenreview).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUntilSignal(cmd, func(ctx context.Context, lg *slog.Logger) error { return sidecar.Run(ctx, f, lg) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Bootstrap, "config", "", "bootstrap file (YAML or JSON)")
	fl.StringVar(&f.SpiffeSocket, "spiffe-socket", "", "SPIFFE Workload API address (unix:///path); overrides the bootstrap's workloadAPI")
	fl.StringVar(&f.SpiffeTokenFile, "spiffe-token-file", "", "projected ServiceAccount token file sent with every Workload API call (Causeway's node agent with --attest tokenreview); unix sockets only")
	fl.StringVar(&f.Control, "control", "", "control plane gRPC address; the config then comes from its stream")
	fl.StringVar(&f.ControlID, "control-id", "", "the control plane's SPIFFE ID (required with --control)")
	fl.StringVar(&f.Node, "node", "", "node ID reported to the control plane (default: the host name)")
	fl.StringArrayVar(&f.Services, "service", nil, "a service this node's workload backs, ns/name (repeatable)")
	fl.StringArrayVar(&f.Addresses, "address", nil, "the workload's own IP (a pod's); the control plane also serves every service with an endpoint there (repeatable)")
	fl.DurationVar(&f.SVIDWait, "svid-wait", 30*time.Second, "how long to wait for the first SVID")
	return cmd
}

// runUntilSignal runs a long-lived command (the sidecar, the gateway) until
// SIGINT or SIGTERM, logging to stderr; a *sidecar.UsageError exits 2, any
// other error 1.
func runUntilSignal(cmd *cobra.Command, run func(context.Context, *slog.Logger) error) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
	var ue *sidecar.UsageError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return &exitError{code: 2, err: err}
	default:
		return &exitError{code: 1, err: err}
	}
}
