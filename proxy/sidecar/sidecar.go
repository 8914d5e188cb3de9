package sidecar

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/spec"
)

// Flags say where the sidecar's bootstrap, identity and config come from.
type Flags struct {
	Bootstrap    string // bootstrap file (YAML or JSON); required
	SpiffeSocket string // Workload API address; overrides the bootstrap's workloadAPI
	// SpiffeTokenFile is a projected ServiceAccount token sent with every
	// Workload API call (cluster mode: Causeway's node agent attests the
	// caller with TokenReview); empty sends none, as a SPIRE agent wants.
	SpiffeTokenFile string
	Control         string   // control plane gRPC address; empty: the bootstrap's static config
	ControlID       string   // the control plane's SPIFFE ID (required with Control)
	Node            string   // node ID reported to the control plane (default: the host name)
	Services        []string // services this node's workload backs, ns/name
	// Addresses are the workload's own IPs (a pod's): the control plane
	// also serves the node every service with an endpoint there that
	// carries its identity, so Services created later need no restart.
	Addresses []string
	SVIDWait  time.Duration // how long to wait for the first SVID
}

// UsageError is a flag combination that cannot run (exit status 2).
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usage(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Run runs the sidecar until ctx ends or the config stream fails.
func Run(ctx context.Context, f Flags, lg *slog.Logger) error {
	if f.Bootstrap == "" {
		return usage("proxy: --config is required")
	}
	var controlID spiffeid.ID
	if f.Control != "" {
		id, err := spiffeid.FromString(f.ControlID)
		if err != nil {
			return usage("proxy: --control-id %q: %v", f.ControlID, err)
		}
		controlID = id
	}
	node := spec.Node{ID: f.Node}
	for _, s := range f.Services {
		k, err := proxy.ParseKey(s)
		if err != nil {
			return usage("proxy: --service %q: %v", s, err)
		}
		node.Services = append(node.Services, k)
	}
	for _, a := range f.Addresses {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return usage("proxy: --address %q: %v", a, err)
		}
		node.Addresses = append(node.Addresses, ip.String())
	}
	if node.ID == "" {
		node.ID, _ = os.Hostname()
	}
	b, err := proxy.LoadBootstrap(f.Bootstrap)
	if err != nil {
		return err
	}
	socket := f.SpiffeSocket
	if socket == "" {
		socket = b.WorkloadAPI
	}
	if f.Control != "" && socket == "" {
		return usage("proxy: --control needs an SVID: give --spiffe-socket or workloadAPI in the bootstrap")
	}
	if f.SpiffeTokenFile != "" && socket == "" {
		return usage("proxy: --spiffe-token-file needs a Workload API: give --spiffe-socket or workloadAPI in the bootstrap")
	}

	opts := proxy.Options{Logger: lg}
	var src *workloadapi.X509Source
	if socket != "" {
		if src, err = WorkloadSource(ctx, "proxy", socket, f.SpiffeTokenFile, f.SVIDWait, lg); err != nil {
			return err
		}
		defer src.Close()
		opts.SVIDs, opts.Bundles = src, src
	}
	p := proxy.New(b, opts)
	if err := p.Start(); err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	defer p.Close()

	if f.Control == "" {
		args := []any{"admin", b.Admin, "inbound", b.Inbound.Listen, "httpProxy", b.Outbound.HTTPProxy, "config", "static"}
		if src != nil {
			if svid, err := src.GetX509SVID(); err == nil {
				args = append(args, "identity", svid.ID.String())
			}
		}
		lg.Info("proxy started", args...)
		<-ctx.Done()
		lg.Info("proxy stopping")
		return nil
	}
	svid, err := src.GetX509SVID()
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	// The control plane binds the node to the SVID it presents.
	node.Identity = svid.ID
	admin := b.Admin
	if a := p.AdminAddr(); a != nil {
		admin = a.String() // the bound address, when the bootstrap said port 0
	}
	lg.Info("proxy started", "node", node.ID, "identity", svid.ID.String(), "admin", admin,
		"inbound", b.Inbound.Listen, "control", f.Control)
	if err := FollowControl(ctx, "proxy", f.Control, controlID, node, admin, src, p.Apply, lg); err != nil {
		return err
	}
	lg.Info("proxy stopping")
	return nil
}
