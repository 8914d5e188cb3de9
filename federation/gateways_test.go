package federation

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

// TestSetGateways: when this cluster's gateway addresses change (a new
// load balancer address, say), peers move their import endpoints to them
// without relinking; a bad address is refused and changes nothing.
func TestSetGateways(t *testing.T) {
	east := newSide(t, "east", sideOpts{gateways: []string{"127.0.0.1:1"}})
	west := newSide(t, "west", sideOpts{})
	link2(t, east, west)
	east.links.SetLocal(exportSnap(east, "web"))
	key := spec.Key{Namespace: "shop", Name: "web-east"}
	endpointsAre := func(want ...string) func() bool {
		return func() bool {
			svc := importOf(west, key)
			if svc == nil {
				return false
			}
			var got []string
			for _, ep := range svc.Endpoints {
				got = append(got, net.JoinHostPort(ep.Addr, strconv.Itoa(int(ep.Port))))
			}
			return slices.Equal(got, want)
		}
	}
	eventually(t, "west imports web-east through the first gateway", waitLimit, endpointsAre("127.0.0.1:1"))

	steps := []struct {
		name    string
		set     []string
		wantErr bool
		want    []string // west's endpoints afterwards, in order
	}{
		{name: "moved to two new addresses", set: []string{"127.0.0.3:7", "127.0.0.2:7", "127.0.0.3:7"}, want: []string{"127.0.0.2:7", "127.0.0.3:7"}},
		{name: "not host:port is refused", set: []string{"127.0.0.4"}, wantErr: true, want: []string{"127.0.0.2:7", "127.0.0.3:7"}},
		{name: "none: the import stays, unreachable", set: nil, want: nil},
		{name: "back again", set: []string{"127.0.0.5:9"}, want: []string{"127.0.0.5:9"}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := east.links.SetGateways(st.set)
			if (err != nil) != st.wantErr {
				t.Fatalf("SetGateways(%v) = %v, want error %v", st.set, err, st.wantErr)
			}
			if m, _ := east.links.localExports(); !slices.Equal(m.GatewayAddrs, st.want) {
				t.Errorf("east sends gateways %v, want %v", m.GatewayAddrs, st.want)
			}
			took := eventually(t, "west's endpoints for web-east", waitLimit, endpointsAre(st.want...))
			t.Logf("SetGateways -> west endpoints %v: %s", st.want, took)
			if l := linkOf(west, "east"); l == nil || !slices.Equal(l.GatewayAddrs, st.want) {
				t.Errorf("west's link to east = %+v, want gateways %v", l, st.want)
			}
		})
	}
}

// TestSetAdvertise: tokens issued after SetAdvertise carry the new
// federation addresses, in the order given; a bad address is refused and
// tokens keep the last good ones; none falls back to the listener.
func TestSetAdvertise(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	listener := east.addr
	steps := []struct {
		name    string
		set     []string
		wantErr bool
		want    []string
	}{
		{name: "load balancer addresses", set: []string{"203.0.113.20:15020", "198.51.100.3:15020"}, want: []string{"203.0.113.20:15020", "198.51.100.3:15020"}},
		{name: "not host:port is refused", set: []string{"203.0.113.21"}, wantErr: true, want: []string{"203.0.113.20:15020", "198.51.100.3:15020"}},
		{name: "none: the listener", set: nil, want: []string{listener}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := east.links.SetAdvertise(st.set); (err != nil) != st.wantErr {
				t.Fatalf("SetAdvertise(%v) = %v, want error %v", st.set, err, st.wantErr)
			}
			// Serve records the listener once its goroutine runs, so the
			// fallback is waited for; set addresses are there at once.
			var got []string
			eventually(t, "token addresses "+strings.Join(st.want, ","), waitLimit, func() bool {
				tok, err := east.links.Generate(time.Minute)
				if err != nil && st.set == nil {
					return false // no listener recorded yet: Generate refuses until Serve runs
				}
				if err != nil {
					t.Fatal(err)
				}
				got = tok.Addrs
				return slices.Equal(got, st.want) || st.set != nil
			})
			if !slices.Equal(got, st.want) {
				t.Errorf("token addresses %v, want %v", got, st.want)
			}
		})
	}
}
