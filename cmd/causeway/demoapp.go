package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/demoapp"
)

// newDemoAppCmd runs the demo application used by tests and examples
// (internal/demoapp). It serves until SIGINT or SIGTERM, then drains.
func newDemoAppCmd() *cobra.Command {
	var o demoapp.Options
	cmd := &cobra.Command{
		Use:   "demo-app",
		Short: "Run a small HTTP/h2c/gRPC/TCP/UDP server that answers with its name and the request it saw",
		Long: `demo-app answers every HTTP path with JSON: name, version, method, path, host,
proto, all request headers, body_bytes and status. The same port speaks h2c and gRPC.
Query parameters status=NNN and latency=DURATION override one answer.
gRPC: grpc.health.v1.Health and causeway.demo.v1.Echo (unary Echo, bidi EchoStream).
--fail-every N fails exactly every Nth request; --fail-rate P fails a share P drawn
from a RNG seeded with --seed (repeatable). Failed HTTP requests answer --fail-status,
failed gRPC calls UNAVAILABLE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.FailRate < 0 || o.FailRate > 1 {
				return usageErr("demo-app: --fail-rate %v: want a share between 0 and 1", o.FailRate)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			o.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			srv, err := demoapp.Start(ctx, o)
			if err != nil {
				return err
			}
			<-srv.Done()
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Name, "name", "demo", "name reported in every answer")
	f.StringVar(&o.Version, "version", "v1", "version reported in every answer")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "HTTP/1.1 + h2c + gRPC address (empty disables)")
	f.StringVar(&o.GRPCListen, "grpc-listen", "", "native gRPC address")
	f.StringVar(&o.TCPEcho, "tcp-echo", "", "TCP echo address")
	f.StringVar(&o.UDPEcho, "udp-echo", "", "UDP echo address")
	f.DurationVar(&o.Latency, "latency", 0, "latency added to every answer")
	f.Float64Var(&o.FailRate, "fail-rate", 0, "share of requests that fail (0..1)")
	f.IntVar(&o.FailEvery, "fail-every", 0, "fail exactly every Nth request (overrides --fail-rate)")
	f.IntVar(&o.FailStatus, "fail-status", 503, "HTTP status of a failed request")
	f.Uint64Var(&o.Seed, "seed", 1, "seed of the --fail-rate RNG")
	f.DurationVar(&o.ShutdownGrace, "shutdown-grace", 5*time.Second, "how long to drain on SIGINT/SIGTERM")
	return cmd
}
