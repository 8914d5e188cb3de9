package localmesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
)

// SidecarOptions are what `causeway up sidecar` is started with.
type SidecarOptions struct {
	Bootstrap string // proxy bootstrap file (listeners only; config comes from Control)
	Control   string // control plane gRPC address
	ControlID spiffeid.ID
	// SPIFFESocket is the Workload API address, "unix:///path".
	SPIFFESocket string
	Node         spec.Node // ID and Services; the identity comes from the SVID
	Logger       *slog.Logger
}

// RunSidecar runs one sidecar until ctx ends: its SVID and trust bundle from
// the Workload API (the same source renews them), mTLS between proxies and
// to the control plane, and every config the control plane sends applied.
func RunSidecar(ctx context.Context, o SidecarOptions) error {
	lg := o.Logger
	if lg == nil {
		lg = slog.Default()
	}
	boot, err := proxy.LoadBootstrap(o.Bootstrap)
	if err != nil {
		return err
	}
	// The SVID may not be issued on the very first try (the parent
	// registers this PID right after fork); go-spiffe retries until the
	// deadline.
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	src, err := workloadapi.NewX509Source(sctx, workloadapi.WithClientOptions(workloadapi.WithAddr(o.SPIFFESocket)))
	cancel()
	if err != nil {
		return fmt.Errorf("sidecar %s: SVID from %s: %w", o.Node.ID, o.SPIFFESocket, err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		return fmt.Errorf("sidecar %s: %w", o.Node.ID, err)
	}
	p := proxy.New(boot, proxy.Options{Logger: lg, SVIDs: src, Bundles: src})
	if err := p.Start(); err != nil {
		return fmt.Errorf("sidecar %s: %w", o.Node.ID, err)
	}
	defer p.Close()
	node := o.Node
	node.Identity = svid.ID
	cl, err := configsource.New(configsource.Options{
		Addr: o.Control, Node: node, AdminAddress: boot.Admin,
		Creds:   configsource.MTLS(src, src, tlsconfig.AuthorizeID(o.ControlID)),
		Apply:   p.Apply,
		Backoff: configsource.Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
		Logger:  lg,
	})
	if err != nil {
		return err
	}
	lg.Info("sidecar started", "node", node.ID, "identity", svid.ID.String(), "admin", boot.Admin, "inbound", boot.Inbound.Listen)
	err = cl.Run(ctx)
	if errors.Is(err, context.Canceled) || ctx.Err() != nil {
		return nil
	}
	return err
}
