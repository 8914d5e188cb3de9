package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"

	"github.com/causeway-mesh/causeway/identity/attest/satoken"
	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/configsource"
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

// UsageError is a flag combination that cannot run (exit status 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

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
	wait := f.SVIDWait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	var clientOpts []workloadapi.ClientOption
	if f.SpiffeSocket != "" {
		clientOpts = append(clientOpts, workloadapi.WithAddr(f.SpiffeSocket))
	}
	if f.SpiffeTokenFile != "" {
		socket := cmp.Or(f.SpiffeSocket, os.Getenv("SPIFFE_ENDPOINT_SOCKET"))
		if !strings.HasPrefix(socket, "unix:") {
			// The token would cross the network in plaintext.
			return usage("gateway: --spiffe-token-file: Workload API %q is not a unix socket; the token is only sent over one", socket)
		}
		if _, err := os.Stat(f.SpiffeTokenFile); err != nil {
			return fmt.Errorf("gateway: --spiffe-token-file: %w", err)
		}
		clientOpts = append(clientOpts, workloadapi.WithDialOptions(grpc.WithPerRPCCredentials(satoken.File{Path: f.SpiffeTokenFile})))
	}
	// The first SVID may take a moment (a SPIRE agent syncs its entries
	// first): go-spiffe retries until the deadline.
	sctx, cancel := context.WithTimeout(ctx, wait)
	src, err := workloadapi.NewX509Source(sctx, workloadapi.WithClientOptions(clientOpts...))
	cancel()
	if err != nil {
		return fmt.Errorf("gateway: SVID from the Workload API (%s): %w", f.SpiffeSocket, err)
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
	cl, err := configsource.New(configsource.Options{
		Addr: f.Control, Node: node, AdminAddress: admin,
		Creds:   configsource.MTLS(src, src, tlsconfig.AuthorizeID(controlID)),
		Apply:   g.Apply,
		Backoff: configsource.Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second},
		Logger:  lg,
	})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	lg.Info("gateway started", "node", node.ID, "identity", svid.ID.String(), "listen", g.Addr().String(),
		"admin", admin, "control", f.Control)
	if err := cl.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("gateway: config stream: %w", err)
	}
	lg.Info("gateway stopping")
	return nil
}
