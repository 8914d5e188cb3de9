package federation

import (
	"net"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/validation"

	fedv1 "github.com/causeway-mesh/causeway/api/federation/v1"
	"github.com/causeway-mesh/causeway/identity/identitytest"
)

// TestAcceptExportsNames: a peer's service names become local names, so
// only what Kubernetes allows a Namespace and a Service to be called is
// accepted, and the refusal names the field.
func TestAcceptExportsNames(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("east.causeway.local")
	bundle := encodeRoots(identitytest.NewCA(t, td, nil).Bundle().X509Authorities())
	cases := []struct{ ns, name, wantErr string }{
		{"shop", "web", ""},
		{"shop", "web/../x", `services[0].name "web/../x"`},
		{"shop", "Web", `services[0].name "Web"`},
		{"shop", "9lives", `services[0].name "9lives"`},
		{"shop", strings.Repeat("a", 64), "services[0].name"},
		{"sh.op", "web", `services[0].namespace "sh.op"`},
		{"", "web", `services[0].namespace ""`},
	}
	for _, c := range cases {
		t.Run(c.ns+"/"+c.name, func(t *testing.T) {
			m := &fedv1.Exports{Version: "v1", Bundle: bundle, Services: []*fedv1.ExportedService{{Namespace: c.ns, Name: c.name}}}
			_, _, err := acceptExports(m, td)
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err %v, want one naming %s", err, c.wantErr)
			}
		})
	}
}

// FuzzAcceptExports: whatever a peer sends as Exports, acceptExports
// either refuses it or returns imports that hold only what it checks:
// Kubernetes names, valid ports, identities and a gateway ID of the
// peer's trust domain, host:port gateways.
func FuzzAcceptExports(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("east.causeway.local")
	bundle := encodeRoots(identitytest.NewCA(f, td, nil).Bundle().X509Authorities())
	for _, m := range []*fedv1.Exports{
		{Version: "a", Bundle: bundle},
		{Version: "b", Bundle: bundle, GatewayAddrs: []string{"127.0.0.1:15443", "[::1]:1"}, GatewayId: "spiffe://east.causeway.local/ns/causeway-system/sa/causeway-gateway",
			Services: []*fedv1.ExportedService{{Namespace: "shop", Name: "web", Ports: []*fedv1.Port{{Name: "http", Port: 80, Protocol: "http", TargetPort: 8080}},
				Identities: []string{"spiffe://east.causeway.local/ns/shop/sa/web"}}}},
		{Version: "c", Bundle: []byte("not pem"), Services: []*fedv1.ExportedService{{Namespace: "a", Name: "b"}, {Namespace: "a", Name: "b"}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m fedv1.Exports
		if proto.Unmarshal(data, &m) != nil {
			return
		}
		im, roots, err := acceptExports(&m, td)
		if err != nil {
			return
		}
		if len(roots) == 0 {
			t.Fatal("accepted without a bundle")
		}
		for _, g := range im.gateways {
			if _, _, err := net.SplitHostPort(g); err != nil {
				t.Fatalf("accepted gateway %q: %v", g, err)
			}
		}
		if len(im.gateways) > 0 && !im.gatewayID.MemberOf(td) {
			t.Fatalf("accepted gateway ID %s outside %s", im.gatewayID, td)
		}
		for _, s := range im.services {
			if len(validation.IsDNS1123Label(s.Key.Namespace)) > 0 || len(validation.IsDNS1035Label(s.Key.Name)) > 0 {
				t.Fatalf("accepted service %q", s.Key)
			}
			for _, p := range s.Ports {
				if p.Port < 1 || p.Port > 65535 || !p.Protocol.Valid() {
					t.Fatalf("accepted port %+v", p)
				}
			}
			for _, id := range s.Identities {
				if !id.MemberOf(td) {
					t.Fatalf("accepted identity %s outside %s", id, td)
				}
			}
		}
	})
}
