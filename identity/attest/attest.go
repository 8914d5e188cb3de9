package attest

import (
	"context"
	"errors"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrNoIdentity means the caller is not entitled to any identity. The Workload
// API answers PermissionDenied and never falls back to another identity.
var ErrNoIdentity = errors.New("no identity issued")

// Caller is what is known about a Workload API caller. UID, GID and PID come
// from the kernel (SO_PEERCRED) when the connection was made, so the caller
// cannot forge them; Metadata is whatever the caller sent and proves nothing
// by itself (a token in it must be checked, e.g. by TokenReview).
type Caller struct {
	PID      int32
	UID      uint32
	GID      uint32
	Metadata map[string][]string
	// Alive, if set, reports whether the process that connected still runs.
	// An attestor that reads /proc/<PID> must call it afterwards: only a
	// still-running original process proves the pid was not recycled.
	Alive func() bool
}

// Attestor maps a caller to its SPIFFE ID. It returns ErrNoIdentity (possibly
// wrapped) for callers it does not know; other errors mean attestation could
// not be done (the server reports them as Unavailable/Internal, not as a denial).
type Attestor interface {
	Attest(ctx context.Context, c Caller) (spiffeid.ID, error)
}
