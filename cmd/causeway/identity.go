package main

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/workloadapi"
)

// caFlags are shared by every subcommand that opens the CA.
type caFlags struct {
	dir         string
	trustDomain string
	svidTTL     time.Duration
	overlap     time.Duration
	caTTL       time.Duration
}

func (f *caFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dir, "ca-dir", "causeway-ca", "directory holding the CA state (ca.json, mode 0600)")
	cmd.Flags().StringVar(&f.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain")
	cmd.Flags().DurationVar(&f.svidTTL, "svid-ttl", ca.DefaultSVIDTTL, "X.509-SVID lifetime (renewed at half-life)")
	cmd.Flags().DurationVar(&f.overlap, "rotation-overlap", ca.DefaultOverlap, "how long a rotated-out root stays trusted")
	cmd.Flags().DurationVar(&f.caTTL, "ca-ttl", ca.DefaultCATTL, "lifetime of each new root and intermediate; a successor is prepared at half of it and signs from five sixths")
}

// options are the CA options these flags give, for any store.
func (f *caFlags) options(td spiffeid.TrustDomain, store ca.Store, log *slog.Logger) ca.Options {
	return ca.Options{TrustDomain: td, Store: store, SVIDTTL: f.svidTTL, Overlap: f.overlap, CATTL: f.caTTL, Logger: log}
}

func (f *caFlags) open(ctx context.Context, log *slog.Logger) (*ca.CA, error) {
	td, err := spiffeid.TrustDomainFromString(f.trustDomain)
	if err != nil {
		return nil, usageErr("--trust-domain %q: %v", f.trustDomain, err)
	}
	c, err := ca.New(ctx, f.options(td, ca.DirStore{Dir: f.dir}, log))
	if err != nil {
		return nil, &exitError{code: 1, err: err}
	}
	return c, nil
}

func newIdentityCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "SPIFFE CA and Workload API for local use",
	}
	caCmd := &cobra.Command{Use: "ca", Short: "Create, show or rotate the trust domain's CA"}
	caCmd.AddCommand(newIdentityCAInitCmd(), newIdentityCAShowCmd(), newIdentityCARotateCmd())
	cmd.AddCommand(caCmd, newIdentityServeCmd())
	return cmd
}

func newIdentityCAInitCmd() *cobra.Command {
	var f caFlags
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the CA (or load the existing one) and print its bundle's sequence number",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.open(cmd.Context(), slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if err != nil {
				return err
			}
			seq, _ := c.Bundle().SequenceNumber()
			fmt.Fprintf(cmd.OutOrStdout(), "CA for %s in %s (bundle sequence %d)\n", c.TrustDomain(), ca.DirStore{Dir: f.dir}.Path(), seq)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newIdentityCAShowCmd() *cobra.Command {
	var f caFlags
	var format string
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Print the trust bundle (-o pem: root certificates; -o spiffe: SPIFFE bundle JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "pem" && format != "spiffe" {
				return usageErr("-o %q: want pem or spiffe", format)
			}
			c, err := f.open(cmd.Context(), slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			b := c.Bundle()
			if format == "spiffe" {
				out, err := b.Marshal()
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
				return nil
			}
			for _, cert := range b.X509Authorities() {
				if err := pem.Encode(cmd.OutOrStdout(), &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&format, "output", "o", "pem", "pem or spiffe")
	return cmd
}

func newIdentityCARotateCmd() *cobra.Command {
	var f caFlags
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Replace the CA now (prepare + activate); the old root stays trusted for --rotation-overlap. `identity serve` rotates on schedule without this",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.open(cmd.Context(), slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)))
			if err != nil {
				return err
			}
			if err := c.Rotate(cmd.Context()); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// attestFlags choose how `identity serve` names its callers.
type attestFlags struct {
	mode       string   // table (peer credentials) or tokenreview
	entries    []string // --entry
	tableFile  string   // --table
	audiences  []string // --token-audience
	kubeconfig string   // for tokenreview and --ca-secret
}

// Attestation modes of `identity serve --attest`.
const (
	attestTable       = "table"
	attestTokenReview = "tokenreview"
)

// attestor builds the Workload API's attestor: a peer-credential table
// (local mode), or TokenReview of the projected ServiceAccount token each
// caller sends (cluster mode).
func (f attestFlags) attestor(td spiffeid.TrustDomain) (attest.Attestor, error) {
	switch f.mode {
	case attestTable:
		var table []attest.Entry
		for _, s := range f.entries {
			e, err := attest.ParseEntry(s)
			if err != nil {
				return nil, usageErr("--entry: %v", err)
			}
			table = append(table, e)
		}
		if f.tableFile != "" {
			data, err := os.ReadFile(f.tableFile)
			if err != nil {
				return nil, &exitError{code: 1, err: err}
			}
			fromFile, err := attest.ParseTableConfig(data)
			if err != nil {
				return nil, &exitError{code: 1, err: fmt.Errorf("%s: %w", f.tableFile, err)}
			}
			table = append(table, fromFile...)
		}
		if len(table) == 0 {
			return nil, usageErr("identity serve: no --entry or --table: every caller would be refused")
		}
		tab, err := attest.NewTable(td, table)
		if err != nil {
			return nil, usageErr("%v", err)
		}
		return tab, nil
	case attestTokenReview:
		if len(f.entries) > 0 || f.tableFile != "" {
			return nil, usageErr("identity serve: --entry and --table are for --attest %s; with %s the token names the caller", attestTable, attestTokenReview)
		}
		kc, err := kubeClient(f.kubeconfig)
		if err != nil {
			return nil, &exitError{code: 1, err: fmt.Errorf("--attest %s: %w", attestTokenReview, err)}
		}
		tr, err := attest.NewTokenReview(attest.TokenReviewConfig{TrustDomain: td, Client: kc.AuthenticationV1(), Audiences: f.audiences})
		if err != nil {
			return nil, usageErr("%v", err)
		}
		return tr, nil
	}
	return nil, usageErr("--attest %q: want %s or %s", f.mode, attestTable, attestTokenReview)
}

func newIdentityServeCmd() *cobra.Command {
	var f caFlags
	var shared sharedCAFlags
	var af attestFlags
	var socket, bundleAddr, fedState, fedSecret string
	cmd := &cobra.Command{
		Use:   "serve --socket PATH (--entry uid:N=ns/sa ... | --table FILE | --attest tokenreview)",
		Short: "Serve the SPIFFE Workload API (and optionally the bundle endpoint) from the CA",
		Long: `Serve the SPIFFE Workload API on a unix socket.

With --attest table (the default, local mode) callers are identified by
their peer credentials and mapped to spiffe://<trust-domain>/ns/<ns>/sa/<sa> by
--entry flags (uid:N=ns/sa, gid:N=ns/sa, exe:/path=ns/sa) or a --table file
(YAML: entries: [{selector, namespace, serviceAccount}]); the first match wins
and unknown callers are refused.

With --attest tokenreview (cluster mode: a node agent whose socket pods mount)
every call must carry a projected ServiceAccount token for --token-audience
(the sidecar's --spiffe-token-file); the apiserver checks it with a
TokenReview (in-cluster config, or --kubeconfig), and the caller gets the
SVID of that ServiceAccount. A missing, expired, revoked or wrong-audience
token is PermissionDenied.

The CA is --ca-dir, rotated on schedule by this process (processes sharing
the directory take turns: a save over a state not yet read is refused, and
the loser reloads), or the Kubernetes
Secret --ca-secret shared with the control plane: then only the --ca-lease
holder rotates it (an empty --ca-lease never writes: a node agent with
read-only access) and every replica serves what the Secret holds.

Linked clusters' bundles: the control plane keeps its links in a file
(control --federation-state) or a Secret (control --federation-secret); with
the same flag here this process reads it every --ca-follow-interval and
serves each peer's bundle as a federated bundle, so sidecars trust the
linked clusters' workloads; an unlinked peer's bundle goes at the next read.
It never writes that store.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				return usageErr("identity serve: --socket is required")
			}
			td, err := spiffeid.TrustDomainFromString(f.trustDomain)
			if err != nil {
				return usageErr("--trust-domain %q: %v", f.trustDomain, err)
			}
			att, err := af.attestor(td)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			store, err := federationStore(fedState, fedSecret, af.kubeconfig)
			if err != nil {
				return err
			}
			c, run, err := shared.open(ctx, f, af.kubeconfig, log)
			if err != nil {
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return &exitError{code: 1, err: err}
			}
			var fed *federation.BundleFollower
			if store != nil {
				fed = &federation.BundleFollower{Store: store, Set: bundle.NewSet(), Logger: log}
			}
			return serveIdentity(ctx, log, c, run, att, socket, bundleAddr, fed, shared.follow)
		},
	}
	f.register(cmd)
	shared.register(cmd.Flags())
	fl := cmd.Flags()
	fl.StringVar(&socket, "socket", "", "unix socket path for the Workload API")
	fl.StringVar(&af.mode, "attest", attestTable, "how callers are identified: table (peer credentials, --entry/--table) or tokenreview (projected ServiceAccount token)")
	fl.StringArrayVar(&af.entries, "entry", nil, "attestation entry selector=namespace/serviceAccount (repeatable)")
	fl.StringVar(&af.tableFile, "table", "", "attestation table file (YAML or JSON)")
	fl.StringSliceVar(&af.audiences, "token-audience", []string{attest.DefaultAudience}, "with --attest tokenreview: audiences the token must be issued for (one of)")
	fl.StringVar(&af.kubeconfig, "kubeconfig", "", "kubeconfig for --attest tokenreview and --ca-secret (default: $KUBECONFIG, ~/.kube/config, else in-cluster)")
	fl.StringVar(&bundleAddr, "bundle-addr", "", "if set, serve the SPIFFE bundle endpoint (https_spiffe) on this TCP address")
	fl.StringVar(&fedState, "federation-state", "", "serve linked clusters' bundles from the control plane's link file (control --federation-state), read every --ca-follow-interval")
	fl.StringVar(&fedSecret, "federation-secret", "", "serve linked clusters' bundles from the control plane's link Secret NAMESPACE/NAME (control --federation-secret), read every --ca-follow-interval; RBAC: get on it")
	return cmd
}

// serveIdentity runs the CA's loop (run: rotation, or following a shared
// Secret), the Workload API and the optional bundle endpoint until ctx ends
// or one of them fails. With fed, the Workload API serves fed.Set as the
// federated bundles and fed follows its store every followEvery.
func serveIdentity(ctx context.Context, log *slog.Logger, c *ca.CA, run func(context.Context) error, att attest.Attestor, socket, bundleAddr string,
	fed *federation.BundleFollower, followEvery time.Duration) error {
	cfg := workloadapi.Config{CA: c, Attestor: att, Logger: log}
	if fed != nil {
		cfg.Federated = fed.Set
		// Read before serving, so the first workloads get the peers'
		// bundles at once. A store that cannot be read does not stop the
		// local trust domain's Workload API: every sidecar of the node
		// depends on it, and Run keeps retrying.
		if err := fed.Sync(ctx); err != nil {
			log.Error("federation: cannot read the peers' bundles yet; serving without them", "store", fed.Store.String(), "err", err)
		}
	}
	srv, err := workloadapi.New(cfg)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	l, err := workloadapi.Listen(socket)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	errc := make(chan error, 2)
	stopCA := startCA(ctx, run, log)
	defer stopCA()
	if fed != nil {
		// Same shape as the CA's loop: its own goroutine, stopped and
		// waited for on the way out.
		stopFed := startCA(ctx, func(ctx context.Context) error { return fed.Run(ctx, followEvery) }, log)
		defer stopFed()
	}
	go func() { errc <- srv.Serve(l) }()
	var ep *bundle.Endpoint
	if bundleAddr != "" {
		svid, err := c.NewSVIDSource(bundle.ServerID(c.TrustDomain()), 0)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if ep, err = bundle.NewEndpoint(c.TrustDomain(), c, svid, log); err != nil {
			return &exitError{code: 1, err: err}
		}
		bl, err := net.Listen("tcp", bundleAddr)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("--bundle-addr: %w", err)}
		}
		go func() { errc <- ep.Serve(bl) }()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	srv.Stop()
	if ep != nil {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ep.Shutdown(shutdown)
	}
	os.Remove(socket)
	if err != nil && !errors.Is(err, context.Canceled) {
		return &exitError{code: 1, err: err}
	}
	return nil
}
