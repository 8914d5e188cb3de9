package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/localmesh"
)

func newUpCmd() *cobra.Command {
	var o localmesh.Options
	var verbose bool
	cmd := &cobra.Command{
		Use:   "up -f DIR",
		Short: "Run a whole local mesh from a folder of manifests, on loopback",
		Long: `Run a whole mesh on 127.0.0.1 from a folder of Kubernetes, SMI and Causeway
manifests: a CA and SPIFFE Workload API, the control plane (config stream, REST and
SMI metrics API), one sidecar per causeway.dev/v1alpha1 Workload and the Workloads'
commands, each with HTTP_PROXY pointing at its sidecar.

A folder whose subfolders each hold a causeway.dev/v1alpha1 Cluster (name,
trustDomain, gatewayPort, adminPort) runs one such cluster per subfolder, each
with its own trust domain, CA and Workload API, plus an east-west gateway
('causeway gateway'); a ClusterLink links clusters through federation, so a
service exported in one (causeway.dev/export: "true" or a ServiceExport) is
imported by the others as <name>-<cluster>. --rest and --listen then do not
apply: each Cluster's adminPort is its REST API ('causeway stat --cluster NAME').

The folder is watched: edits are applied within a second; an invalid edit is
reported (FILE:LINE: Kind ns/name: field: message) and changes nothing.
Ctrl-C stops every process it started. Watch traffic with 'causeway stat'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Dir == "" {
				return usageErr("up: -f DIR is required")
			}
			if fi, err := os.Stat(o.Dir); err != nil || !fi.IsDir() {
				return usageErr("up: -f %s: not a directory", o.Dir)
			}
			o.Out = cmd.OutOrStdout()
			if verbose {
				o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := localmesh.Run(ctx, o); err != nil {
				return &exitError{code: 1, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Dir, "file", "f", "", "folder of manifests (watched)")
	f.StringVar(&o.REST, "rest", "127.0.0.1:15000", "REST and SMI metrics API address (one-cluster folders)")
	f.StringVar(&o.GRPC, "listen", "127.0.0.1:0", "config stream (gRPC) address (one-cluster folders)")
	f.DurationVar(&o.Debounce, "debounce", 100*time.Millisecond, "quiet period after an edit before the folder is reloaded")
	f.DurationVar(&o.ScrapeEvery, "scrape-interval", time.Second, "how often the sidecars' metrics are read")
	f.DurationVar(&o.MetricsWindow, "metrics-window", 10*time.Second, "span the SMI metrics API (and causeway stat) covers")
	f.DurationVar(&o.Grace, "grace", 5*time.Second, "time a child gets between SIGTERM and SIGKILL")
	f.BoolVarP(&verbose, "verbose", "v", false, "log the control plane's, Workload API's and federation's events to stderr")
	return cmd
}
