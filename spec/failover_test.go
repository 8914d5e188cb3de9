package spec_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// peerImport is what federation's Imports gives for service ns/name of a
// linked cluster: ns/name-<cluster>, the peer's identity, one endpoint per
// peer gateway.
func peerImport(cluster, key string, gwPort int32, ready bool, ports ...spec.Port) spec.Service {
	td := spiffeid.RequireTrustDomainFromString(cluster + ".local")
	remote := K(key)
	if len(ports) == 0 {
		ports = []spec.Port{{Port: 14001, Protocol: spec.ProtocolHTTP}}
	}
	return spec.Service{
		Key:        spec.Key{Namespace: remote.Namespace, Name: remote.Name + "-" + cluster},
		Ports:      ports,
		Identities: []spiffeid.ID{spiffeid.RequireFromPath(td, "/ns/"+remote.Namespace+"/sa/"+remote.Name)},
		Endpoints: []spec.Endpoint{{Addr: "127.0.0.1", Port: gwPort, Ready: ready,
			Gateway: spiffeid.RequireFromPath(td, "/ns/causeway-system/sa/causeway-gateway"), Remote: remote}},
		Origin: spec.Origin{Source: spec.Source{File: "federation:" + cluster}, Object: spec.Object{Kind: "ServiceImport", Namespace: remote.Namespace, Name: remote.Name}},
	}
}

// epString renders an endpoint as the tests expect it: "addr:port/servicePort@priority", plus "-"
// when not ready.
func epString(e spec.Endpoint) string {
	s := fmt.Sprintf("%s:%d/%d@%d", e.Addr, e.Port, e.ServicePort, e.Priority)
	if !e.Ready {
		s += "-"
	}
	return s
}

// TestFailoverName: a service exported here and by linked clusters keeps
// its own endpoints first and gains theirs one priority behind; a local name
// that is not exported never gains any; a name nobody has here is made from
// the imports; only ports both sides serve cross.
func TestFailoverName(t *testing.T) {
	t.Parallel()
	exported := func(mut ...func(*spec.Service)) spec.Input {
		in := bookstore()
		for i := range in.Services {
			if in.Services[i].Key == K("bookstore/bookstore-v2") {
				in.Services[i].Export = true
				for _, m := range mut {
					m(&in.Services[i])
				}
			}
		}
		return in
	}
	without := func() spec.Input {
		in := exported()
		in.Services = slices.DeleteFunc(in.Services, func(s spec.Service) bool { return s.Key == K("bookstore/bookstore-v2") })
		in.Splits = nil
		return in
	}
	tcp := spec.Port{Port: 9000, Protocol: spec.ProtocolTCP}
	http := spec.Port{Port: 14001, Protocol: spec.ProtocolHTTP}
	tests := []struct {
		name       string
		in         spec.Input
		imports    []spec.Service
		endpoints  []string // of bookstore/bookstore-v2, sorted as Build sorts; nil: no such service
		identities int
		export     bool
		warning    string
	}{
		{name: "exported here and in east: east's gateway behind the local endpoint", in: exported(),
			imports:   []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true)},
			endpoints: []string{"127.0.0.1:15102/0@0", "127.0.0.1:15443/0@1"}, identities: 2, export: true},
		{name: "two linked clusters: both at priority 1, every identity", in: exported(),
			imports:   []spec.Service{peerImport("north", "bookstore/bookstore-v2", 16443, false), peerImport("east", "bookstore/bookstore-v2", 15443, true)},
			endpoints: []string{"127.0.0.1:15102/0@0", "127.0.0.1:15443/0@1", "127.0.0.1:16443/0@1-"}, identities: 3, export: true},
		{name: "not exported here: the local name is left alone", in: bookstore(),
			imports:   []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true)},
			endpoints: []string{"127.0.0.1:15102/0@0"}, identities: 1, warning: "not by this cluster"},
		{name: "no local service: the name is made from the imports", in: without(),
			imports:   []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true)},
			endpoints: []string{"127.0.0.1:15443/0@1"}, identities: 1},
		{name: "local endpoints already at 1: the peers go to 2",
			in:        exported(func(s *spec.Service) { s.Endpoints[0].Priority = 1 }),
			imports:   []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true)},
			endpoints: []string{"127.0.0.1:15102/0@1", "127.0.0.1:15443/0@2"}, identities: 2, export: true},
		{name: "the peer serves one of two ports: its gateway serves only that one",
			in:        exported(func(s *spec.Service) { s.Ports = append(s.Ports, tcp) }),
			imports:   []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true, http)},
			endpoints: []string{"127.0.0.1:15102/0@0", "127.0.0.1:15443/14001@1"}, identities: 2, export: true},
		{name: "a port with another protocol is not shared", in: exported(),
			imports:   []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true, spec.Port{Port: 14001, Protocol: spec.ProtocolTCP})},
			endpoints: []string{"127.0.0.1:15102/0@0"}, identities: 1, export: true, warning: "shares no port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			snap, diags := spec.BuildWithImports(tt.in, spec.Input{Services: tt.imports}, spec.BuildOptions{})
			if diags.HasErrors() {
				t.Fatalf("errors: %v", diags)
			}
			svc := snap.Service(K("bookstore/bookstore-v2"))
			if svc == nil {
				t.Fatalf("no bookstore/bookstore-v2 in %v", snap.Services)
			}
			var got []string
			for _, e := range svc.Endpoints {
				got = append(got, epString(e))
			}
			if !slices.Equal(got, tt.endpoints) {
				t.Errorf("endpoints %v, want %v", got, tt.endpoints)
			}
			for _, e := range svc.Endpoints {
				if e.Port != 15102 && (e.Gateway.IsZero() || e.Remote != K("bookstore/bookstore-v2")) {
					t.Errorf("endpoint %s lost its gateway or remote: %+v", epString(e), e)
				}
			}
			if len(svc.Identities) != tt.identities {
				t.Errorf("identities %v, want %d", svc.Identities, tt.identities)
			}
			if svc.Export != tt.export {
				t.Errorf("export = %v, want %v", svc.Export, tt.export)
			}
			if tt.warning != "" && !strings.Contains(fmt.Sprint(diags), tt.warning) {
				t.Errorf("diagnostics %v lack %q", diags, tt.warning)
			}
			// Every import keeps its own <name>-<cluster> as it came.
			for _, imp := range tt.imports {
				s := snap.Service(imp.Key)
				if s == nil || len(s.Endpoints) != 1 || s.Endpoints[0].Priority != 0 {
					t.Errorf("import %s changed: %+v", imp.Key, s)
				}
			}
		})
	}
}

// TestFailoverDeterministic: the imports' order does not change the
// snapshot, and Build refuses a negative priority by path.
func TestFailoverDeterministic(t *testing.T) {
	t.Parallel()
	in := bookstore()
	in.Services[1].Export = true
	a := []spec.Service{peerImport("east", "bookstore/bookstore-v2", 15443, true), peerImport("north", "bookstore/bookstore-v2", 16443, true)}
	b := []spec.Service{a[1], a[0]}
	sa, _ := spec.BuildWithImports(in, spec.Input{Services: a}, spec.BuildOptions{})
	sb, _ := spec.BuildWithImports(in, spec.Input{Services: b}, spec.BuildOptions{})
	if sa.Version != sb.Version {
		t.Errorf("versions differ with the imports' order: %s, %s", sa.Version, sb.Version)
	}
	bad := bookstore()
	bad.Services[0].Endpoints[0].Priority = -1
	if _, diags := spec.Build(bad, spec.BuildOptions{}); !strings.Contains(fmt.Sprint(diags), "endpoints[0].priority") {
		t.Errorf("negative priority not reported by path: %v", diags)
	}
}
