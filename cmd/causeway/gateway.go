package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/gateway"
)

// newGatewayCmd is the east-west gateway (gateway/): the door through which
// linked clusters reach this cluster's exported services.
func newGatewayCmd() *cobra.Command {
	var f gateway.Flags
	cmd := &cobra.Command{
		Use:   "gateway --listen ADDR (--control ADDR --control-id ID | --config FILE) [--admin ADDR] [--spiffe-socket ADDR]",
		Short: "Run the east-west gateway for linked clusters",
		Long: `Run Causeway's east-west gateway (gateway/doc.go).

Sidecars of linked clusters open mTLS to --listen with an SNI naming a service
port (<port>.<name>.<namespace>.svc.<trust domain>) and, inside it, mTLS to the
destination sidecar. The gateway accepts callers whose trust domain it has a
bundle for (its own and the federated ones the Workload API delivers), only
for services exported in its config, and relays the bytes to a ready
destination sidecar without seeing the inner plaintext. Everything else is
refused and counted by reason (causeway_gateway_refused_total on /metrics).

The SVID comes from the Workload API (--spiffe-socket, else
$SPIFFE_ENDPOINT_SOCKET); its identity should be
spiffe://<td>/ns/causeway-system/sa/causeway-gateway. The config comes from
the control plane's stream (--control, --control-id) as for a proxy, or from a
NodeConfig file (--config, YAML or JSON) when there is no control plane; with
both the file is served until the stream's first config.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUntilSignal(cmd, func(ctx context.Context, lg *slog.Logger) error { return gateway.Run(ctx, f, lg) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Listen, "listen", "", "east-west mTLS address, e.g. 0.0.0.0:15443 (required)")
	fl.StringVar(&f.Admin, "admin", "", "admin address for /ready /live /metrics /config; empty: none")
	fl.StringVar(&f.Control, "control", "", "control plane gRPC address; the config then comes from its stream")
	fl.StringVar(&f.ControlID, "control-id", "", "the control plane's SPIFFE ID (required with --control)")
	fl.StringVar(&f.SpiffeSocket, "spiffe-socket", "", "SPIFFE Workload API address (unix:///path); default $SPIFFE_ENDPOINT_SOCKET")
	fl.StringVar(&f.SpiffeTokenFile, "spiffe-token-file", "", "projected ServiceAccount token file sent with every Workload API call (Causeway's node agent with --attest tokenreview); unix sockets only")
	fl.StringVar(&f.Config, "config", "", "static NodeConfig file (YAML or JSON), for runs without a control plane")
	fl.StringVar(&f.Node, "node", "", "node ID reported to the control plane, e.g. east-gateway (default: <host name>-gateway)")
	fl.DurationVar(&f.SVIDWait, "svid-wait", 30*time.Second, "how long to wait for the first SVID")
	return cmd
}
