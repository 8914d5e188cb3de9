package configv1_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// bookstore is a mesh that uses every field the config carries: TCP and HTTP
// ports, endpoint identities and labels, a split with route matches, an
// access policy with header matches.
func bookstore() *spec.Snapshot {
	v1 := HTTPService("bookstore/bookstore-v1", 14001, "127.0.0.1:15101")
	v1.Identities = []spiffeid.ID{ID("bookstore", "bookstore-v1")}
	v1.Endpoints[0].Identity = ID("bookstore", "bookstore-v1")
	v1.Endpoints[0].Labels = map[string]string{"version": "v1"}
	v1.Endpoints[0].Zone = "z1"
	v1.Endpoints[0].ServicePort = 14001
	v2 := HTTPService("bookstore/bookstore-v2", 14001, "127.0.0.1:15102")
	root := HTTPService("bookstore/bookstore", 14001)
	root.ClusterIPs = []string{"10.96.0.10"}
	mysql := spec.Service{Key: K("db/mysql"), Ports: []spec.Port{{Name: "mysql", Port: 3306, Protocol: spec.ProtocolTCP, TargetPort: 13306}}, Export: true}
	// An import from a linked cluster: reached through that cluster's gateway.
	mysqlV2 := spec.Service{Key: K("db/mysql-v2"), Ports: mysql.Ports}
	remote := HTTPService("bookstore/bookstore-east", 14001, "127.0.0.1:15443")
	remote.Identities = []spiffeid.ID{spiffeid.RequireFromString("spiffe://east.example/ns/bookstore/sa/bookstore")}
	remote.Endpoints[0].Gateway = spiffeid.RequireFromString("spiffe://east.example/ns/causeway-system/sa/causeway-gateway")
	remote.Endpoints[0].Remote = K("bookstore/bookstore")
	remote.Endpoints[0].Priority = 1
	split := Split("bookstore/split", "bookstore/bookstore", "bookstore/bookstore-v1", 90, "bookstore/bookstore-v2", 10)
	split.Matches = []spec.RouteRef{{Kind: spec.RouteHTTP, Key: K("bookstore/routes"), Matches: []string{"buy"}}}
	return MustBuild(spec.Input{
		TrustDomain: TrustDomain,
		Services: []spec.Service{v1, v2, root, mysql, remote, mysqlV2,
			// A service of another cluster, exported, as a node there sees it.
			{Key: spec.Key{Cluster: "east", Namespace: "db", Name: "ledger"}, Ports: []spec.Port{{Port: 5432, Protocol: spec.ProtocolTCP}}, Export: true}},
		Routes: []spec.Route{
			{Key: K("bookstore/routes"), Kind: spec.RouteHTTP, Matches: []spec.Match{
				{Name: "books", PathRegex: "/books", Methods: []string{"GET"}},
				{Name: "buy", PathRegex: ".*a-book.*new", Methods: []string{"*"}, Headers: map[string]string{"client-app": "bookbuyer"}},
			}},
			{Key: K("db/mysql"), Kind: spec.RouteTCP, Ports: []int32{3306}},
		},
		Splits: []spec.Split{split, {Key: K("db/mysql-split"), Root: K("db/mysql"),
			Backends: []spec.Backend{{Service: K("db/mysql"), Weight: 1}, {Service: K("db/mysql-v2"), Weight: 1}},
			Matches:  []spec.RouteRef{{Kind: spec.RouteTCP, Key: K("db/mysql")}}}},
		Policies: []spec.AccessPolicy{{
			Key: K("bookstore/buyer"), Destination: ID("bookstore", "bookstore-v1"),
			Sources: []spiffeid.ID{ID("bookbuyer", "bookbuyer")},
			Rules: []spec.AccessRule{
				{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: K("bookstore/routes"), Matches: []string{"books"}}},
				{Route: spec.RouteRef{Kind: spec.RouteTCP, Key: K("db/mysql")}},
			},
		}},
	})
}

func nodes() map[string]spec.Node {
	return map[string]spec.Node{
		"server": {ID: "bookstore-v1-0", Identity: ID("bookstore", "bookstore-v1"), Services: []spec.Key{K("bookstore/bookstore-v1")}, Addresses: []string{"127.0.0.1"}},
		"client": {ID: "bookbuyer-0", Identity: ID("bookbuyer", "bookbuyer")},
		"remote": {ID: "gw", Cluster: "east"},
	}
}

// TestRoundTrip checks that a compiled config survives encode, marshal,
// unmarshal and decode unchanged, including its canonical JSON (so the
// content hash a proxy could recompute is the same).
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	snap := bookstore()
	for name, node := range nodes() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			want := spec.Compile(snap, node)
			b, err := proto.Marshal(configv1.FromSpec(want))
			if err != nil {
				t.Fatal(err)
			}
			var msg configv1.NodeConfig
			if err := proto.Unmarshal(b, &msg); err != nil {
				t.Fatal(err)
			}
			got, err := msg.ToSpec()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				gj, _ := json.MarshalIndent(got, "", " ")
				wj, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("round trip changed the config:\ngot  %s\nwant %s", gj, wj)
			}
		})
	}
}

func TestToSpecRejectsBadIDs(t *testing.T) {
	t.Parallel()
	good := configv1.FromSpec(spec.Compile(bookstore(), nodes()["server"]))
	cases := []struct {
		name   string
		mutate func(*configv1.NodeConfig)
		want   string
	}{
		{"missing node", func(c *configv1.NodeConfig) { c.Node = nil }, "node: missing"},
		{"node identity", func(c *configv1.NodeConfig) { c.Node.Identity = "http://x" }, "node.identity"},
		{"node address", func(c *configv1.NodeConfig) { c.Node.Addresses = []string{"10.0.0.1", "pod-ip"} }, "node.addresses[1]"},
		{"policy source", func(c *configv1.NodeConfig) { c.Inbound.Policies[0].Sources[0] = "spiffe://" }, "inbound.policies[0].sources[0]"},
		{"cluster identity", func(c *configv1.NodeConfig) { c.Clusters[0].Identities = []string{"nope"} }, "clusters[0].identities[0]"},
		{"endpoint identity", func(c *configv1.NodeConfig) { c.Clusters[1].Endpoints[0].Identity = "spiffe://UPPER/x" }, "clusters[1].endpoints[0].identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := proto.Clone(good).(*configv1.NodeConfig)
			tc.mutate(c)
			_, err := c.ToSpec()
			if err == nil {
				t.Fatalf("ToSpec accepted a config with a bad %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the decoder. Whatever decodes must
// encode and decode again to the same spec value (decoding is a fixed point
// after one pass), and nothing may panic.
func FuzzDecode(f *testing.F) {
	snap := bookstore()
	for _, node := range nodes() {
		b, err := proto.Marshal(configv1.FromSpec(spec.Compile(snap, node)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var msg configv1.NodeConfig
		if err := proto.Unmarshal(data, &msg); err != nil {
			return
		}
		first, err := msg.ToSpec()
		if err != nil {
			return
		}
		b, err := proto.Marshal(configv1.FromSpec(first))
		if err != nil {
			t.Fatalf("marshal of a decoded config: %v", err)
		}
		var again configv1.NodeConfig
		if err := proto.Unmarshal(b, &again); err != nil {
			t.Fatalf("unmarshal of our own encoding: %v", err)
		}
		second, err := again.ToSpec()
		if err != nil {
			t.Fatalf("decode of our own encoding: %v", err)
		}
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("not a fixed point:\n%+v\n%+v", first, second)
		}
	})
}

// TestTestDataSetsEveryField guards TestRoundTrip itself: every field of the
// compiled config types must be set somewhere in the test mesh, so a field
// added to spec.NodeConfig but forgotten in the proto fails here rather than
// vanishing silently on the config stream.
func TestTestDataSetsEveryField(t *testing.T) {
	t.Parallel()
	snap := bookstore()
	set := map[string]bool{}
	all := map[string]bool{}
	for _, node := range nodes() {
		walkFields(reflect.ValueOf(*spec.Compile(snap, node)), "NodeConfig", set, all)
	}
	var missing []string
	for f := range all {
		if !set[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("the test mesh never sets these config fields, so the round trip does not check them: %s", strings.Join(missing, ", "))
	}
}

// walkFields records, under a type-qualified path, every struct field it
// meets (all) and those it meets with a non-zero value (set). spiffeid.ID
// is a leaf.
func walkFields(v reflect.Value, path string, set, all map[string]bool) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[spiffeid.ID]() {
			return
		}
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := v.Type().Name() + "." + f.Name
			all[p] = true
			if !v.Field(i).IsZero() {
				set[p] = true
			}
			walkFields(v.Field(i), p, set, all)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkFields(v.Index(i), path, set, all)
		}
		if v.Len() == 0 {
			walkFields(reflect.Zero(v.Type().Elem()), path, set, all)
		}
	case reflect.Map:
		if v.Type().Elem().Kind() == reflect.Struct {
			walkFields(reflect.Zero(v.Type().Elem()), path, set, all)
		}
	}
}
