package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/sidecar"
	"github.com/causeway-mesh/causeway/spec"
)

// Flags are `causeway gateway`'s flags.
type Flags struct {
	Listen       string        // east-west TLS address; required
	Admin        string        // admin address; "" = none
	Control      string        // control plane gRPC address; "" = static config only
	ControlID    string        // the control plane's SPIFFE ID (required with Control)
	SpiffeSocket string        // Workload API address; "" = $SPIFFE_ENDPOINT_SOCKET
	Config       string        // static NodeConfig file (YAML or JSON), applied first
	Node         string        // node ID for the control plane; "" = <host name>-gateway
	SVIDWait     time.Duration // how long to wait for the first SVID (default 30s)
	// OnStart, if set, is called once the gateway serves, with it (its bound
	// addresses, for tests and in-process launchers such as `causeway up`).
	OnStart func(*Gateway)
	// SpiffeTokenFile is a projected ServiceAccount token sent with every
	// Workload API call, for Causeway's node agent (identity serve
	// --attest tokenreview); unix sockets only. "" = none (SPIRE).
	SpiffeTokenFile string
}

// UsageError is a flag combination that cannot run (exit status 2); the
// gateway's and the sidecar's are one type.
type UsageError = sidecar.UsageError

func usage(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Run runs a gateway until ctx ends or the config stream fails: SVID and
// bundles from the Workload API (federated bundles included, which is what
// lets linked clusters' callers in), the static config if given, then the
// control plane's config stream, whose configs go through Apply (ACK) or
// are refused (NACK, the previous one stays).
func Run(ctx context.Context, f Flags, lg *slog.Logger) error {
	if f.Listen == "" {
		return usage("gateway: --listen is required")
	}
	if f.Control == "" && f.Config == "" {
		return usage("gateway: give --control (with --control-id) or --config: a gateway without a config refuses everything")
	}
	var controlID spiffeid.ID
	if f.Control != "" {
		id, err := spiffeid.FromString(f.ControlID)
		if err != nil {
			return usage("gateway: --control-id %q: %v", f.ControlID, err)
		}
		controlID = id
	}
	var static *spec.NodeConfig
	if f.Config != "" {
		c, err := proxy.LoadNodeConfig(f.Config)
		if err != nil {
			return fmt.Errorf("gateway: --config: %w", err)
		}
		static = c
	}
	src, err := sidecar.WorkloadSource(ctx, "gateway", f.SpiffeSocket, f.SpiffeTokenFile, f.SVIDWait, lg)
	if err != nil {
		return err
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}

	g, err := New(Options{Listen: f.Listen, Admin: f.Admin, SVIDs: src, Bundles: src, BundlesUpdated: src.Updated(), Logger: lg})
	if err != nil {
		return err
	}
	defer g.Close()
	if static != nil {
		if err := g.Apply(static); err != nil {
			return fmt.Errorf("gateway: --config %s: %w", f.Config, err)
		}
	}
	if f.OnStart != nil {
		f.OnStart(g)
	}
	admin := ""
	if a := g.AdminAddr(); a != nil {
		admin = a.String()
	}
	if f.Control == "" {
		lg.Info("gateway started", "identity", svid.ID.String(), "listen", g.Addr().String(), "admin", admin, "config", "static")
		<-ctx.Done()
		lg.Info("gateway stopping")
		return nil
	}
	node := spec.Node{ID: f.Node, Identity: svid.ID}
	if node.ID == "" {
		host, _ := os.Hostname()
		node.ID = host + "-gateway"
	}
	lg.Info("gateway started", "node", node.ID, "identity", svid.ID.String(), "listen", g.Addr().String(),
		"admin", admin, "control", f.Control)
	if err := sidecar.FollowControl(ctx, "gateway", f.Control, controlID, node, admin, src, g.Apply, lg); err != nil {
		return err
	}
	lg.Info("gateway stopping")
	return nil
}
