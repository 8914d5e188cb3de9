package federation

import (
	"slices"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// TestExportsOnlyOwnIdentities: a Service exported by both clusters has,
// in each cluster's snapshot, both clusters' identities (its one name across
// clusters, spec.BuildWithImports). Exporting it must send only the
// exporter's own: the peer refuses (NACKs) identities outside the
// exporter's trust domain, which would stop every export.
func TestExportsOnlyOwnIdentities(t *testing.T) {
	east := newSide(t, "east", sideOpts{gateways: []string{"127.0.0.1:1"}})
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)

	snap := exportSnap(east, "web")
	merged := *snap
	merged.Services = slices.Clone(snap.Services)
	for i := range merged.Services {
		if merged.Services[i].Key.Name == "web" {
			merged.Services[i].Identities = append(slices.Clone(merged.Services[i].Identities), spiffeid.RequireFromPath(west.td, "/ns/shop/sa/web"))
		}
	}
	east.links.SetLocal(&merged)
	key := spec.Key{Namespace: "shop", Name: "web-east"}
	eventually(t, "west imports shop/web-east", waitLimit, func() bool {
		return slices.ContainsFunc(west.links.Imports().Services, func(s spec.Service) bool { return s.Key == key })
	})
	if got, want := importOf(west, key).Identities, []spiffeid.ID{spiffeid.RequireFromPath(east.td, "/ns/shop/sa/web")}; !slices.Equal(got, want) {
		t.Errorf("west imported identities %v, want %v", got, want)
	}
	eventually(t, "west ACKs east's exports", waitLimit, func() bool {
		st := east.links.List()
		return len(st) == 1 && st[0].ExportAcked != "" && st[0].ExportNacked == ""
	})
}
