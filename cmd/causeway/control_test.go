package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc/credentials"

	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
)

const controlManifest = `apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: bookstore}
spec:
  ports: [{name: http, port: 14001}]
`

// freeAddrs returns n distinct loopback addresses for a command the test
// starts to bind. They come from loopback.FreePorts, below the kernel's
// ephemeral range: a port taken from ":0" and closed again could be handed
// to any of the connections or listeners other packages' tests open in the
// meantime, and the command would then fail to bind it.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	ports, err := loopback.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	addrs := make([]string, n)
	for i, p := range ports {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return addrs
}

func TestControlCommandUsage(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.yaml")
	if err := os.WriteFile(file, []byte(controlManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"no manifests", []string{"control", "--insecure"}},
		{"manifests is a file", []string{"control", "--insecure", "--manifests", file}},
		{"manifests and kube", []string{"control", "--insecure", "--manifests", filepath.Dir(file), "--kubeconfig", file}},
		{"bad trust domain", []string{"control", "--manifests", filepath.Dir(file), "--trust-domain", "UPPER"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(tc.args); code != 2 {
				t.Fatalf("causeway %v exited %d, want 2", tc.args, code)
			}
		})
	}
}

// TestControlCommandServes runs `causeway control` in-process on loopback,
// connects a proxy's stream client and reads its sync state over REST, then
// stops it as Ctrl-C would.
func TestControlCommandServes(t *testing.T) {
	cases := []struct {
		name  string
		flags func(caDir string) []string
		creds func(t *testing.T, caDir string) (credentials.TransportCredentials, spiffeid.ID)
	}{
		{"insecure", func(string) []string { return []string{"--insecure"} },
			func(*testing.T, string) (credentials.TransportCredentials, spiffeid.ID) {
				return nil, spiffeid.RequireFromString("spiffe://cluster.local/ns/bookbuyer/sa/bookbuyer")
			}},
		{"mtls from the local CA", func(caDir string) []string { return []string{"--ca-dir", caDir} },
			func(t *testing.T, caDir string) (credentials.TransportCredentials, spiffeid.ID) {
				td := spiffeid.RequireTrustDomainFromString("cluster.local")
				c, err := ca.New(context.Background(), ca.Options{TrustDomain: td, Store: ca.DirStore{Dir: caDir}})
				if err != nil {
					t.Fatal(err)
				}
				id := spiffeid.RequireFromPath(td, "/ns/bookbuyer/sa/bookbuyer")
				svid, err := c.NewSVIDSource(id, time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				controlID := spiffeid.RequireFromPath(td, "/ns/causeway/sa/control")
				return configsource.MTLS(svid, c, tlsconfig.AuthorizeID(controlID)), id
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "svc.yaml"), []byte(controlManifest), 0o644); err != nil {
				t.Fatal(err)
			}
			caDir := t.TempDir()
			addrs := freeAddrs(t, 2)
			grpcAddr, restAddr := addrs[0], addrs[1]
			root := newRootCmd()
			root.SetArgs(append([]string{"control", "--manifests", dir, "--listen", grpcAddr, "--rest", restAddr}, tc.flags(caDir)...))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(ctx) }()
			defer func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("control exited with %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Error("control did not stop within 10s of cancel")
				}
			}()

			// The CA directory is written by the command; open it after.
			waitHTTP(t, "http://"+restAddr+"/api/v1/services")
			creds, id := tc.creds(t, caDir)
			applied := make(chan string, 4)
			c, err := configsource.New(configsource.Options{Addr: grpcAddr, Creds: creds, Logger: slog.New(slog.DiscardHandler),
				Node:  spec.Node{ID: "bookbuyer-0", Identity: id},
				Apply: func(cfg *spec.NodeConfig) error { applied <- cfg.Version; return nil }})
			if err != nil {
				t.Fatal(err)
			}
			cctx, ccancel := context.WithCancel(context.Background())
			cdone := make(chan struct{})
			go func() { defer close(cdone); _ = c.Run(cctx) }()
			defer func() { ccancel(); <-cdone }()
			var version string
			select {
			case version = <-applied:
			case <-time.After(10 * time.Second):
				t.Fatalf("no config applied; client status %+v", c.Status())
			}
			var proxy struct {
				InSync           bool   `json:"inSync"`
				LastAckedVersion string `json:"lastAckedVersion"`
				Node             struct {
					Identity string `json:"identity"`
				} `json:"node"`
			}
			deadline := time.Now().Add(10 * time.Second)
			for getJSON(t, "http://"+restAddr+"/api/v1/proxies/bookbuyer-0", &proxy); !proxy.InSync; getJSON(t, "http://"+restAddr+"/api/v1/proxies/bookbuyer-0", &proxy) {
				if time.Now().After(deadline) {
					t.Fatalf("proxy never in sync: %+v", proxy)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if proxy.LastAckedVersion != version || proxy.Node.Identity != id.String() {
				t.Errorf("sync state %+v, want ACKed %s as %s", proxy, version, id)
			}
		})
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s never answered 200: %v", url, errors.Join(err))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return // not connected yet
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
