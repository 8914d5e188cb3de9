package control

import (
	"slices"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

// SyncState is what the control plane knows of one proxy's config: what it
// sent, what the proxy accepted and what it refused, and why. Versions are
// spec.NodeConfig versions (content hashes), compared only for equality.
type SyncState struct {
	Node spec.Node `json:"node"`
	// AdminAddress is the proxy's admin server, scraped for metrics.
	AdminAddress string `json:"adminAddress,omitempty"`
	// Peer is the proxy's remote address on its latest stream.
	Peer           string    `json:"peer"`
	Connected      bool      `json:"connected"`
	ConnectedSince time.Time `json:"connectedSince"`
	DisconnectedAt time.Time `json:"disconnectedAt,omitzero"`

	// SnapshotVersion is the last snapshot compiled for this node, whether
	// or not it changed the node's config (and so was sent).
	SnapshotVersion string    `json:"snapshotVersion,omitempty"`
	LastSentVersion string    `json:"lastSentVersion,omitempty"`
	LastSentNonce   string    `json:"lastSentNonce,omitempty"`
	LastSentAt      time.Time `json:"lastSentAt,omitzero"`
	// Pushes counts responses sent on the latest stream.
	Pushes int `json:"pushes"`

	// LastAckedVersion is the version the proxy runs: the last it ACKed, or
	// the one it said it had when it connected.
	LastAckedVersion string    `json:"lastAckedVersion,omitempty"`
	LastAckedAt      time.Time `json:"lastAckedAt,omitzero"`

	LastNackVersion string    `json:"lastNackVersion,omitempty"`
	LastNackReason  string    `json:"lastNackReason,omitempty"`
	LastNackAt      time.Time `json:"lastNackAt,omitzero"`

	gen uint64 // which stream owns this entry
}

// InSync reports whether the proxy runs the last version sent to it.
func (p SyncState) InSync() bool {
	return p.LastSentVersion != "" && p.LastSentVersion == p.LastAckedVersion
}

func (p *SyncState) clone() SyncState {
	c := *p
	c.Node.Services = slices.Clone(p.Node.Services)
	return c
}
