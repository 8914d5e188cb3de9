package linkerd_test

import (
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
	"github.com/causeway-mesh/causeway/adapters/linkerd"
	"github.com/causeway-mesh/causeway/spec"
)

func TestIdentity(t *testing.T) {
	t.Parallel()
	td := spiffeid.RequireTrustDomainFromString("prod.example")
	tests := []struct {
		id     spiffeid.ID
		cpNS   string
		want   string
		wantOK bool
	}{
		{spiffeid.RequireFromPath(td, "/ns/shop/sa/web"), "", "web.shop.serviceaccount.identity.linkerd.prod.example", true},
		{spiffeid.RequireFromPath(td, "/ns/shop/sa/web"), "linkerd-cp", "web.shop.serviceaccount.identity.linkerd-cp.prod.example", true},
		{spiffeid.RequireFromPath(td, "/vm/db-1"), "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.id.String(), func(t *testing.T) {
			t.Parallel()
			got, ok := linkerd.Identity(tc.id, tc.cpNS)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Identity(%s) = %q, %v; want %q, %v", tc.id, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	cases := map[string]*spec.Snapshot{}
	for _, c := range gatewayapitest.Edge(t) {
		cases[c.Name] = c.Snapshot
	}
	cases["rust-regex"] = rustRegexSnapshot(t)
	permissive := *cases["edge-access"]
	permissive.Mode = spec.ModePermissive
	cases["permissive"] = &permissive
	tests := []struct {
		name  string
		check func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics)
	}{
		{"edge-access", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "MeshTLSAuthentication", "shop", "client-web", "spec"),
				`{"identities":["client.shop.serviceaccount.identity.linkerd.cluster.local"]}`)
			// Servers are per workload port (targetPort), with the protocol.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "Server", "shop", "causeway-18080", "spec"), `{"podSelector":{},"port":18080,"proxyProtocol":"HTTP/1"}`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "Server", "shop", "causeway-19000", "spec"), `{"podSelector":{},"port":19000,"proxyProtocol":"opaque"}`)
			// The HTTPRouteGroup rule: an inbound HTTPRoute on the Server,
			// authorized by a policy targeting that route.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "client-web-0", "spec", "parentRefs"), `[{"group":"policy.linkerd.io","kind":"Server","name":"causeway-18080"}]`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "AuthorizationPolicy", "shop", "client-web-0", "spec"), `{
			  "targetRef":{"group":"gateway.networking.k8s.io","kind":"HTTPRoute","name":"client-web-0"},
			  "requiredAuthenticationRefs":[{"group":"policy.linkerd.io","kind":"MeshTLSAuthentication","name":"client-web"}]}`)
			// The TCPRoute rule opens its port's Server.
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "AuthorizationPolicy", "shop", "client-web-1-19000", "spec", "targetRef"), `{"group":"policy.linkerd.io","kind":"Server","name":"causeway-19000"}`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "Namespace", "", "shop", "metadata", "annotations"), `{"config.linkerd.io/default-inbound-policy":"deny"}`)
			gatewayapitest.HasDiag(t, ds, "spec.rules[2]", "Linkerd proxies no UDP")
			for _, d := range ds {
				if strings.Contains(d.Message, "also reach") {
					t.Errorf("scope warning with no other service account in the namespace: %s", d)
				}
			}
		}},
		{"edge-tcp", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "TCPRoute", "shop", "db-5432", "spec", "rules"), `[{"backendRefs":[
			  {"group":"","kind":"Service","name":"db-blue","port":5432,"weight":1},
			  {"group":"","kind":"Service","name":"db-green","port":5432,"weight":3}]}]`)
		}},
		{"edge-http-matches", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			for _, o := range objs {
				if o.GetKind() == "UDPRoute" {
					t.Errorf("UDPRoute %s rendered; Linkerd has no UDP", o.GetName())
				}
			}
			gatewayapitest.HasDiag(t, ds, "spec.backends", "Linkerd proxies no UDP")
		}},
		{"rust-regex", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			// Service db runs as another service account of the namespace.
			gatewayapitest.HasDiag(t, ds, "spec.destination", "these sources also reach service account(s) db there")
			gatewayapitest.HasDiag(t, ds, "spec.matches[1]", `uses \Q, which Linkerd's regex engine (Rust regex) does not accept`)
			gatewayapitest.Want(t, gatewayapitest.Field(t, objs, "HTTPRoute", "shop", "p-0", "spec", "rules"), `[{"matches":[{"path":{"type":"Exact","value":"/ok"}}]}]`)
		}},
		{"permissive", func(t *testing.T, objs []*unstructured.Unstructured, ds spec.Diagnostics) {
			for _, o := range objs {
				if o.GetKind() != "HTTPRoute" && o.GetKind() != "TCPRoute" {
					t.Errorf("%s %s rendered in permissive mode", o.GetKind(), o.GetName())
				}
			}
			gatewayapitest.HasDiag(t, ds, "", "the mesh is permissive")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, ds := linkerd.Render(cases[tc.name], linkerd.Options{})
			tc.check(t, objs, ds)
		})
	}
}

// rustRegexSnapshot has one access rule whose two matches are a plain
// exact path and an RE2 quoted literal Rust's regex crate rejects.
func rustRegexSnapshot(t *testing.T) *spec.Snapshot {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	web := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	client := spiffeid.RequireFromPath(td, "/ns/shop/sa/client")
	routeKey := spec.Key{Namespace: "shop", Name: "r"}
	in := spec.Input{TrustDomain: "cluster.local",
		Services: []spec.Service{
			{Key: spec.Key{Namespace: "shop", Name: "web"}, Identities: []spiffeid.ID{web}, Ports: []spec.Port{{Port: 80, Protocol: spec.ProtocolHTTP}}},
			{Key: spec.Key{Namespace: "shop", Name: "db"}, Identities: []spiffeid.ID{spiffeid.RequireFromPath(td, "/ns/shop/sa/db")}, Ports: []spec.Port{{Port: 5432, Protocol: spec.ProtocolTCP}}},
		},
		Routes: []spec.Route{{Key: routeKey, Kind: spec.RouteHTTP, Matches: []spec.Match{
			{Name: "ok", PathRegex: "/ok$"},
			{Name: "quoted", PathRegex: `\Q/a.b\E`},
		}}},
		Policies: []spec.AccessPolicy{{Key: spec.Key{Namespace: "shop", Name: "p"}, Destination: web, Sources: []spiffeid.ID{client},
			Rules: []spec.AccessRule{{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: routeKey}}}}},
	}
	s, ds := spec.Build(in, spec.BuildOptions{})
	if ds.HasErrors() {
		t.Fatal(ds.Err())
	}
	return s
}
