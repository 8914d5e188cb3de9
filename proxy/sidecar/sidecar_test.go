package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/proxy/sidecar"
	"github.com/causeway-mesh/causeway/spec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// writeBootstrap writes a static bootstrap (admin on a free port, one fixed
// HTTP port) and returns its path and the admin address.
func writeBootstrap(t *testing.T) (string, string) {
	t.Helper()
	in := spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{
		proxytest.Service("shop/web", 80, spec.ProtocolHTTP, proxytest.AppEndpoint(t, "127.0.0.1:1", 80)),
	}}
	admin := proxytest.FreeAddr(t)
	b := proxy.Bootstrap{
		Admin:    admin,
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/web", Port: 80, Listen: "127.0.0.1:0"}}},
		Config:   proxytest.Compile(t, in, spec.Node{ID: "web"}),
	}
	raw, err := json.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, admin
}

// TestRunRefusesBadFlags: each unusable flag combination is a UsageError
// (exit status 2) that names the flag, before anything is bound.
func TestRunRefusesBadFlags(t *testing.T) {
	path, _ := writeBootstrap(t)
	cases := []struct {
		name  string
		flags sidecar.Flags
		want  string
	}{
		{"no bootstrap", sidecar.Flags{}, "proxy: --config is required"},
		{"bad control ID", sidecar.Flags{Bootstrap: path, Control: "127.0.0.1:1", ControlID: "not-spiffe"}, `proxy: --control-id "not-spiffe"`},
		{"bad service", sidecar.Flags{Bootstrap: path, Services: []string{"noslash"}}, `proxy: --service "noslash"`},
		{"control without SVID", sidecar.Flags{Bootstrap: path, Control: "127.0.0.1:1", ControlID: "spiffe://cluster.local/causeway/control"},
			"proxy: --control needs an SVID"},
		{"token file without a Workload API", sidecar.Flags{Bootstrap: path, SpiffeTokenFile: path},
			"proxy: --spiffe-token-file needs a Workload API"},
		{"token file over TCP", sidecar.Flags{Bootstrap: path, SpiffeSocket: "tcp://127.0.0.1:1", SpiffeTokenFile: path},
			`proxy: --spiffe-token-file: Workload API "tcp://127.0.0.1:1" is not a unix socket`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := sidecar.Run(context.Background(), tc.flags, quiet)
			var ue *sidecar.UsageError
			if !errors.As(err, &ue) || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
				t.Fatalf("Run = %v, want a UsageError starting %q", err, tc.want)
			}
		})
	}
}

// TestRunStatic: with a static bootstrap the sidecar serves (/ready says
// 200) until its context ends, then returns nil with every goroutine gone.
func TestRunStatic(t *testing.T) {
	path, admin := writeBootstrap(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- sidecar.Run(ctx, sidecar.Flags{Bootstrap: path}, quiet) }()
	ready := false
	// Ready in milliseconds alone; 30 s leaves room for a CI machine that
	// runs every package at once.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + admin + "/ready")
		if err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == 200
		}
	}
	http.DefaultClient.CloseIdleConnections()
	if !ready {
		t.Fatal("admin /ready never answered 200")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
