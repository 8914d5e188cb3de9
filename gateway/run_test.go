package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/gateway"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestRunRefusesBadFlags: each unusable flag combination is a UsageError
// (exit status 2) naming the flag, before anything is bound.
func TestRunRefusesBadFlags(t *testing.T) {
	cases := []struct {
		name  string
		flags gateway.Flags
		want  string
	}{
		{"no listen", gateway.Flags{Config: "x.yaml"}, "gateway: --listen is required"},
		{"no config source", gateway.Flags{Listen: "127.0.0.1:0"}, "gateway: give --control"},
		{"bad control ID", gateway.Flags{Listen: "127.0.0.1:0", Control: "127.0.0.1:1", ControlID: "nope"}, `gateway: --control-id "nope"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := gateway.Run(context.Background(), tc.flags, quiet)
			var ue *gateway.UsageError
			if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Run = %v, want a UsageError starting %q", err, tc.want)
			}
		})
	}
}

// runGateway runs gateway.Run until the test ends and returns the gateway
// once it serves.
func runGateway(t *testing.T, f gateway.Flags) *gateway.Gateway {
	t.Helper()
	started := make(chan *gateway.Gateway, 1)
	f.OnStart = func(g *gateway.Gateway) { started <- g }
	f.Listen, f.Admin = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gateway.Run(ctx, f, quiet) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case g := <-started:
		return g
	case err := <-done:
		t.Fatalf("Run = %v before serving", err)
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not start")
	}
	return nil
}

// exportedView reads the gateway's /config exports, or nil before a config.
func exportedView(t *testing.T, g *gateway.Gateway) map[string][]string {
	t.Helper()
	resp, err := httpClient(t).Get("http://" + g.AdminAddr().String() + "/config")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v gateway.ConfigView
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
		return nil
	}
	return v.Exported
}

// TestRunControlPlane: `causeway gateway --control` gets its SVID from the
// Workload API, connects to the control plane as the node
// east-gateway/spiffe://east.test/ns/causeway-system/sa/causeway-gateway
// (no Services: the control plane takes it), ACKs the config and serves
// exactly the exported services; a published change reaches it.
func TestRunControlPlane(t *testing.T) {
	east := identitytest.NewCA(t, eastTD, nil)
	controlID := spiffeid.RequireFromPath(eastTD, "/ns/causeway-system/sa/causeway-control-plane")
	controlSVID, err := east.NewSVIDSource(controlID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srv, addr := controltest.Start(t, "", control.Options{Creds: control.MTLS(controlSVID, east, eastTD)})
	in := exportedInput(eastTD.Name())
	in.Services = append(in.Services, spec.Service{Key: spec.Key{Namespace: "shop", Name: "secret"},
		Ports: []spec.Port{{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP}}})
	srv.Publish(controltest.Snapshot(t, in), nil)
	sock := identitytest.StartWorkloadAPI(t, east, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "causeway-system/causeway-gateway", "")})

	g := runGateway(t, gateway.Flags{Control: addr, ControlID: controlID.String(), SpiffeSocket: sock, Node: "east-gateway"})
	eventually(t, "the gateway to serve the control plane's config", func() bool {
		return len(exportedView(t, g)["shop/books:80"]) == 1
	})
	if ex := exportedView(t, g); len(ex) != 1 {
		t.Fatalf("gateway exports %v, want shop/books:80 only (shop/secret is not exported)", ex)
	}
	// The gateway ACKs a config after applying it, so the control plane
	// may hear of it a moment after /config shows it.
	eventually(t, "the control plane to have the gateway's ACK", func() bool {
		st, ok := srv.Proxy("east-gateway")
		return ok && st.InSync()
	})
	st, ok := srv.Proxy("east-gateway")
	if !ok || st.Node.Identity != wid(eastTD, "causeway-system", "causeway-gateway") || len(st.Node.Services) != 0 || !st.InSync() {
		t.Fatalf("control plane's view of the gateway = %+v (known %v), want it in sync with the gateway's SVID identity", st, ok)
	}
	in.Services[0].Endpoints = append(in.Services[0].Endpoints, spec.Endpoint{Addr: "127.0.0.1", Port: 4144, Ready: true})
	srv.Publish(controltest.Snapshot(t, in), nil)
	eventually(t, "the new endpoint to reach the gateway", func() bool {
		return len(exportedView(t, g)["shop/books:80"]) == 2
	})
}

// TestRunStatic: with --config the gateway serves a NodeConfig file and no
// control plane.
func TestRunStatic(t *testing.T) {
	east := identitytest.NewCA(t, eastTD, nil)
	sock := identitytest.StartWorkloadAPI(t, east, identitytest.WorkloadAPI{Entries: identitytest.Self(t, "causeway-system/causeway-gateway", "")})
	cfg := proxytest.Compile(t, exportedInput(eastTD.Name()), spec.Node{ID: "east-gateway"})
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gateway.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	g := runGateway(t, gateway.Flags{Config: path, SpiffeSocket: sock})
	if ex := exportedView(t, g); len(ex["shop/books:80"]) != 1 {
		t.Fatalf("static gateway exports %v, want shop/books:80", ex)
	}
}
