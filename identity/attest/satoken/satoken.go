// Package satoken is the client half of Causeway's cluster-mode
// attestation: gRPC per-RPC credentials that send a workload's projected
// ServiceAccount token with every Workload API call. It lives apart from
// identity/attest, whose TokenReview attestor links client-go, so that the
// sidecar (cmd/causeway-proxy) can send the token without linking any
// Kubernetes code.
//
// Enters: the path of the token file the kubelet keeps current. Leaves: the
// token in the gRPC metadata key MetadataKey of each call. No goroutines.
package satoken

import (
	"context"
	"fmt"
	"os"
	"strings"
)

// MetadataKey is the gRPC metadata key in which a cluster-mode workload
// sends its projected ServiceAccount token with every Workload API call.
const MetadataKey = "causeway-sa-token"

// File is gRPC per-RPC credentials that send the projected ServiceAccount
// token at Path in MetadataKey. The file is read on every call, because the
// kubelet rewrites it well before expiry. Give it to go-spiffe's client with
//
//	workloadapi.WithClientOptions(workloadapi.WithAddr("unix:///run/causeway/api.sock"),
//		workloadapi.WithDialOptions(grpc.WithPerRPCCredentials(satoken.File{Path: p})))
//
// Only for a unix-socket address: it allows plaintext (the Workload API has
// no TLS), and over TCP that would show the token to the network.
type File struct {
	Path string
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (f File) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("ServiceAccount token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return nil, fmt.Errorf("ServiceAccount token %s: empty", f.Path)
	}
	return map[string]string{MetadataKey: tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: false,
// since the Workload API socket is plaintext by design (SPIFFE Workload API).
func (File) RequireTransportSecurity() bool { return false }
