package sidecar

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
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
)

// WorkloadSource opens go-spiffe's X509Source on the Workload API at socket
// ("" = $SPIFFE_ENDPOINT_SOCKET), waiting up to wait (0 = 30 s) for the
// first SVID: a SPIRE agent may still be syncing its entries, and go-spiffe
// retries until then. With tokenFile, a projected ServiceAccount token goes
// with every call (Causeway's node agent attests callers with TokenReview);
// only over a unix socket, or it would cross the network in plaintext. who
// ("proxy", "gateway") starts every error; flag mistakes are *UsageError.
// The sidecar and the east-west gateway both get their identity here.
func WorkloadSource(ctx context.Context, who, socket, tokenFile string, wait time.Duration, lg *slog.Logger) (*workloadapi.X509Source, error) {
	opts := []workloadapi.ClientOption{workloadapi.WithLogger(spiffeLog{lg})}
	if socket != "" {
		opts = append(opts, workloadapi.WithAddr(socket))
	}
	if tokenFile != "" {
		if s := cmp.Or(socket, os.Getenv("SPIFFE_ENDPOINT_SOCKET")); !strings.HasPrefix(s, "unix:") {
			return nil, usage("%s: --spiffe-token-file: Workload API %q is not a unix socket; the token is only sent over one", who, s)
		}
		if _, err := os.Stat(tokenFile); err != nil {
			return nil, fmt.Errorf("%s: --spiffe-token-file: %w", who, err)
		}
		opts = append(opts, workloadapi.WithDialOptions(grpc.WithPerRPCCredentials(satoken.File{Path: tokenFile})))
	}
	if wait <= 0 {
		wait = 30 * time.Second
	}
	sctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	src, err := workloadapi.NewX509Source(sctx, workloadapi.WithClientOptions(opts...))
	if err != nil {
		return nil, fmt.Errorf("%s: SVID from the Workload API %s: %w", who, socket, err)
	}
	return src, nil
}

// FollowControl streams the control plane's config for node into apply
// (ACK, or NACK with apply's error) until ctx ends, over mTLS with src's
// SVID, requiring the control plane to prove controlID. A stream that ends
// because ctx did is not an error.
func FollowControl(ctx context.Context, who, addr string, controlID spiffeid.ID, node spec.Node, admin string,
	src *workloadapi.X509Source, apply func(*spec.NodeConfig) error, lg *slog.Logger) error {
	cl, err := configsource.New(configsource.Options{
		Addr: addr, Node: node, AdminAddress: admin,
		Creds:   configsource.MTLS(src, src, tlsconfig.AuthorizeID(controlID)),
		Apply:   apply,
		Backoff: configsource.Backoff{Initial: 50 * time.Millisecond, Max: 5 * time.Second},
		Logger:  lg,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	if err := cl.Run(ctx); err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return fmt.Errorf("%s: config stream: %w", who, err)
	}
	return nil
}
