package gatewayapitest

import (
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
)

// ExportSnapshot has a service imported from cluster "east" (its
// endpoints are east's gateway) and a local exported service.
func ExportSnapshot(t testing.TB) *spec.Snapshot {
	t.Helper()
	east := spiffeid.RequireTrustDomainFromString("east.example")
	gwID := spiffeid.RequireFromPath(east, "/ns/causeway-system/sa/causeway-gateway")
	in := spec.Input{TrustDomain: "cluster.local", Services: []spec.Service{
		{Key: spec.Key{Cluster: "east", Namespace: "shop", Name: "web"},
			Ports:     []spec.Port{{Name: "http", Port: 8080, Protocol: spec.ProtocolHTTP}, {Name: "dns", Port: 53, Protocol: spec.ProtocolUDP}},
			Endpoints: []spec.Endpoint{{Addr: "198.51.100.7", Port: 15443, Ready: true, Gateway: gwID, Remote: spec.Key{Namespace: "shop", Name: "web"}}}},
		{Key: spec.Key{Namespace: "shop", Name: "api"}, Export: true,
			Ports: []spec.Port{{Port: 9090, Protocol: spec.ProtocolGRPC}}},
	}}
	s, ds := spec.Build(in, spec.BuildOptions{})
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	return s
}
