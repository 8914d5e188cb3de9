// Command causeway-proxy is the Causeway sidecar alone: the same flags and
// behaviour as `causeway proxy` (both run proxy/sidecar), in a binary that
// links only the data plane. The one `causeway` binary carries the control
// plane's Kubernetes client code too, and its package initialisation maps
// in and touches enough of it to triple a sidecar's idle RSS; a pod (or
// `causeway up`) that wants the small footprint runs this instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/causeway-mesh/causeway/proxy/sidecar"
)

// repeated collects a flag given several times (--service a --service b).
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	// A leading "proxy" is accepted, so whatever runs `causeway proxy ARGS`
	// (a pod spec, the bench harness) can run this binary unchanged.
	if len(args) > 0 && args[0] == "proxy" {
		args = args[1:]
	}
	var f sidecar.Flags
	fs := flag.NewFlagSet("causeway-proxy", flag.ContinueOnError)
	fs.StringVar(&f.Bootstrap, "config", "", "bootstrap file (YAML or JSON)")
	fs.StringVar(&f.SpiffeSocket, "spiffe-socket", "", "SPIFFE Workload API address (unix:///path); overrides the bootstrap's workloadAPI")
	fs.StringVar(&f.SpiffeTokenFile, "spiffe-token-file", "", "projected ServiceAccount token file sent with every Workload API call (Causeway's node agent with --attest tokenreview); unix sockets only")
	fs.StringVar(&f.Control, "control", "", "control plane gRPC address; the config then comes from its stream")
	fs.StringVar(&f.ControlID, "control-id", "", "the control plane's SPIFFE ID (required with --control)")
	fs.StringVar(&f.Node, "node", "", "node ID reported to the control plane (default: the host name)")
	fs.Var((*repeated)(&f.Services), "service", "a service this node's workload backs, ns/name (repeatable)")
	fs.Var((*repeated)(&f.Addresses), "address", "the workload's own IP (a pod's); the control plane also serves every service with an endpoint there (repeatable)")
	fs.DurationVar(&f.SVIDWait, "svid-wait", 30*time.Second, "how long to wait for the first SVID")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "causeway-proxy: unexpected arguments %q\n", fs.Args())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := sidecar.Run(ctx, f, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "causeway-proxy:", err)
	var ue *sidecar.UsageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}
