package kubeint_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

const bookstore = `apiVersion: v1
kind: Namespace
metadata: {name: bookstore}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: bookstore}
spec: {ports: [{name: http, port: 14001}]}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore-v1, namespace: bookstore}
spec: {ports: [{name: http, port: 14001}]}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore-v2, namespace: bookstore}
spec: {ports: [{name: http, port: 14001}]}
`

func split(v1, v2 int) string {
	return fmt.Sprintf(`apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: bookstore-split, namespace: bookstore}
spec:
  service: bookstore
  backends:
  - {service: bookstore-v1, weight: %d}
  - {service: bookstore-v2, weight: %d}
`, v1, v2)
}

// weights is what the node's compiled config does with bookstore/bookstore.
func weights(cfg *spec.NodeConfig) string {
	for _, u := range cfg.Upstreams {
		if u.Service == (spec.Key{Namespace: "bookstore", Name: "bookstore"}) {
			var out []int64
			for _, b := range u.Default {
				out = append(out, b.Weight/1000)
			}
			return fmt.Sprint(out)
		}
	}
	return "none"
}

func TestControlKubeEndToEnd(t *testing.T) {
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kubetest.InstallCRDs(ctx, cfg, "../../deploy/crds/split.smi-spec.io.yaml", "../../deploy/crds/access.smi-spec.io.yaml",
		"../../deploy/crds/specs.smi-spec.io.yaml", "../../deploy/crds/causeway.dev.yaml"); err != nil {
		t.Fatal(err)
	}
	apply, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply.ApplyYAML(ctx, bookstore+"---\n"+split(90, 10)); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kubeconfig, bin := kubeconfigAndBinary(t, ctx, cfg, dir)

	ports := freePorts(t, 2)
	grpcAddr, restAddr := "127.0.0.1:"+ports[0], "127.0.0.1:"+ports[1]
	cmd := exec.Command(bin, "control", "--kubeconfig", kubeconfig, "--insecure", "--listen", grpcAddr, "--rest", restAddr)
	cmd.Env = append(os.Environ(), "POD_NAMESPACE=default", "POD_NAME=control-0")
	logFile, err := os.Create(filepath.Join(dir, "control.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // only the process this test started
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("causeway control exited with %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("causeway control did not stop within 15s of SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("control log:\n%s", b)
		}
	}()

	configs := make(chan *spec.NodeConfig, 16)
	c, err := configsource.New(configsource.Options{Addr: grpcAddr, Node: spec.Node{ID: "bookbuyer-0"},
		Logger: slog.New(slog.DiscardHandler), Apply: func(cfg *spec.NodeConfig) error { configs <- cfg; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	cdone := make(chan struct{})
	go func() { defer close(cdone); _ = c.Run(cctx) }()
	defer func() { ccancel(); <-cdone }()

	waitWeights := func(want string) time.Duration {
		t.Helper()
		start := time.Now()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case cfg := <-configs:
				if weights(cfg) == want {
					return time.Since(start)
				}
			case err := <-exited:
				t.Fatalf("causeway control exited early: %v", err)
			case <-timeout:
				t.Fatalf("proxy never got weights %s; client %+v", want, c.Status())
			}
		}
	}
	steps := []struct {
		name  string
		apply string
		want  string
	}{
		{"initial split reaches the proxy", "", "[90 10]"},
		{"shifted split reaches the proxy", split(10, 90), "[10 90]"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.apply != "" {
				if err := apply.ApplyYAML(ctx, st.apply); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("weights %s applied by the proxy after %v", st.want, waitWeights(st.want).Round(time.Millisecond))
		})
	}

	// The proxy's ACK follows Apply; the control plane records it a moment
	// after the test saw the config, so wait for it.
	var sync struct {
		InSync bool `json:"inSync"`
	}
	var lastErr error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + restAddr + "/api/v1/proxies/bookbuyer-0")
		if err != nil {
			lastErr = err
			continue
		}
		lastErr = json.NewDecoder(resp.Body).Decode(&sync)
		resp.Body.Close()
		if lastErr == nil && sync.InSync {
			return
		}
	}
	t.Errorf("REST sync state: in sync = %v (%v)", sync.InSync, lastErr)
}
