package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/localmesh"
)

func newLoadCmd() *cobra.Command {
	var o localmesh.LoadOptions
	cmd := &cobra.Command{
		Use:   "load (--url URL | --tcp ADDR) [--rate N]",
		Short: "Send steady demo traffic and report successes, failures and latency",
		Long: `Send GET requests to --url (through $HTTP_PROXY, the workload's sidecar under
'causeway up') or TCP echo exchanges to --tcp, at --rate per second, and print one
line per --report-every: requests, ok, failed, status codes, which demo-app
answered (servers{...}) and p50/p99 latency.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (o.URL == "") == (o.TCP == "") {
				return usageErr("load: give exactly one of --url and --tcp")
			}
			if o.Rate <= 0 {
				return usageErr("load: --rate %v: must be > 0", o.Rate)
			}
			o.Out = cmd.OutOrStdout()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return localmesh.RunLoad(ctx, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.URL, "url", "", "URL to GET")
	f.StringVar(&o.TCP, "tcp", "", "TCP echo address (host:port)")
	f.Float64Var(&o.Rate, "rate", 10, "requests per second")
	f.StringVar(&o.Name, "name", "load", "name printed in each report")
	f.DurationVar(&o.ReportEvery, "report-every", 2*time.Second, "report interval")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Second, "timeout of one request")
	return cmd
}
