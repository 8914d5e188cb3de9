package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/gateway"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// bareGateway is a gateway of east.test with in-memory SVIDs and no config.
func bareGateway(t *testing.T) *gateway.Gateway {
	t.Helper()
	ca := proxytest.NewCA(t, "east.test")
	g, err := gateway.New(gateway.Options{Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Logger: quiet,
		SVIDs: ca.SVID(t, ca.ID("causeway-system", "causeway-gateway"), time.Time{}, time.Time{}), Bundles: ca.Bundle()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func exportedInput(td string) spec.Input {
	return spec.Input{TrustDomain: td, Services: []spec.Service{{Key: booksKey, Export: true,
		Ports:     []spec.Port{{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP}},
		Endpoints: []spec.Endpoint{{Addr: "127.0.0.1", Port: 4143, Ready: true}}}}}
}

// TestApply: a config the gateway cannot use is refused with a reason that
// names the object and field, and the one in force stays (its version is
// still what /ready and /config report).
func TestApply(t *testing.T) {
	g := bareGateway(t)
	admin := "http://" + g.AdminAddr().String()
	resp, err := http.Get(admin + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/ready before any config = %d, want 503", resp.StatusCode)
	}
	good := proxytest.Compile(t, exportedInput("east.test"), spec.Node{ID: "east-gateway"})
	if err := g.Apply(good); err != nil {
		t.Fatalf("Apply(good): %v", err)
	}
	badPort := proxytest.Compile(t, exportedInput("east.test"), spec.Node{ID: "east-gateway"})
	badPort.Upstreams[0].Ports[0].Port = 70000
	cases := []struct {
		name string
		cfg  *spec.NodeConfig
		want string
	}{
		{"nil", nil, "config is nil"},
		{"another trust domain", proxytest.Compile(t, exportedInput("west.test"), spec.Node{ID: "east-gateway"}), `trustDomain "west.test" is not the gateway's (east.test`},
		{"port out of range", badPort, "upstreams[0] shop/books: ports[0]: port 70000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := g.Apply(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	resp, err = http.Get(admin + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v gateway.ConfigView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.Version != good.Version || v.TrustDomain != "east.test" || len(v.Exported["shop/books:80"]) != 1 || v.Exported["shop/books:80"][0] != "127.0.0.1:4143" {
		t.Fatalf("/config = %+v, want version %s exporting shop/books:80 at 127.0.0.1:4143", v, good.Version)
	}
	mfs := proxytest.Scrape(t, admin+"/metrics")
	if got := proxytest.Sum(mfs, "causeway_gateway_config_updates_total", map[string]string{"result": "refused"}); got != float64(len(cases)) {
		t.Fatalf("config_updates_total{result=refused} = %v, want %d", got, len(cases))
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestNewRefusesBadOptions: each unusable option is named before anything
// is bound.
func TestNewRefusesBadOptions(t *testing.T) {
	ca := proxytest.NewCA(t, "east.test")
	svid := ca.SVID(t, ca.ID("causeway-system", "causeway-gateway"), time.Time{}, time.Time{})
	cases := []struct {
		name string
		opts gateway.Options
		want string
	}{
		{"no SVIDs", gateway.Options{Listen: "127.0.0.1:0", Bundles: ca.Bundle()}, "SVIDs and Options.Bundles are required"},
		{"no listen", gateway.Options{SVIDs: svid, Bundles: ca.Bundle()}, "Options.Listen is empty"},
		{"bad listen", gateway.Options{Listen: "127.0.0.1:-1", SVIDs: svid, Bundles: ca.Bundle()}, "listen 127.0.0.1:-1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := gateway.New(tc.opts)
			if err == nil {
				g.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
