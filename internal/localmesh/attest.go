package localmesh

import (
	"context"
	"fmt"
	"sync"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/identity/attest"
)

// pidAttestor gives an identity to the processes this run started, by the
// PID the kernel reports for the Workload API connection (SO_PEERCRED). A
// PID is registered between fork and the child's first connect, and removed
// once the child has been reaped, so a recycled PID of a stranger never
// matches: while the child is unreaped its PID cannot be reused.
type pidAttestor struct {
	mu   sync.Mutex
	pids map[int32]spiffeid.ID
}

func newPIDAttestor() *pidAttestor { return &pidAttestor{pids: map[int32]spiffeid.ID{}} }

func (a *pidAttestor) add(pid int, id spiffeid.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pids[int32(pid)] = id
}

func (a *pidAttestor) remove(pid int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pids, int32(pid))
}

// Attest implements attest.Attestor.
func (a *pidAttestor) Attest(_ context.Context, c attest.Caller) (spiffeid.ID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Alive closes the small window between reaping a child and removing
	// its PID here: the connecting process must still be the one that
	// connected (the server pins it with a pidfd).
	if id, ok := a.pids[c.PID]; ok && (c.Alive == nil || c.Alive()) {
		return id, nil
	}
	return spiffeid.ID{}, fmt.Errorf("%w: pid %d is not a sidecar started by causeway up", attest.ErrNoIdentity, c.PID)
}
