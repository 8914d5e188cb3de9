package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/workloadapi"

	"github.com/causeway-mesh/causeway/proxy"
)

func newProxyCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "proxy --config FILE",
		Short: "Run the Causeway sidecar proxy from a bootstrap file",
		Long: `Run the Causeway data plane: inbound mesh listener, outbound HTTP forward
proxy and fixed upstream ports, admin server (/ready /live /metrics /config /tap).
The bootstrap format is described in proxy/doc.go; see
proxy/testdata/bootstrap-example.yaml.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageErr("proxy: --config is required")
			}
			b, err := proxy.LoadBootstrap(file)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			lg := slog.New(slog.NewTextHandler(os.Stderr, nil))
			opts := proxy.Options{Logger: lg}
			if b.WorkloadAPI != "" {
				// The SVID and bundles come only from the Workload API, so the
				// same proxy runs against Causeway's or a SPIRE agent's.
				ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
				src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(b.WorkloadAPI)))
				cancel()
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("proxy: workloadAPI %s: %w", b.WorkloadAPI, err)}
				}
				defer src.Close()
				opts.SVIDs, opts.Bundles = src, src
			}
			p := proxy.New(b, opts)
			if err := p.Start(); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("proxy: %w", err)}
			}
			lg.Info("proxy started", "admin", b.Admin, "inbound", b.Inbound.Listen, "httpProxy", b.Outbound.HTTPProxy)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			lg.Info("proxy stopping")
			return p.Close()
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "bootstrap file (YAML or JSON)")
	return cmd
}
