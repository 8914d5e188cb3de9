package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/federation"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/spec"
)

// exportedService is a Service the kube translator marks Export.
func exportedService(name string, port int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
  namespace: shop
  annotations: {causeway.dev/export: "true"}
spec:
  ports: [{name: http, port: %d}]
---
`, name, port)
}

// controlProc is one `causeway control` process with federation on.
type controlProc struct {
	cluster, dir, rest string
	cmd                *exec.Cmd
}

func startControlProc(t *testing.T, bin, cluster, manifests, gateway string, ports []int) *controlProc {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "svc.yaml"), []byte(manifests), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	p := &controlProc{cluster: cluster, dir: dir, rest: "http://" + addr(ports[1])}
	p.cmd = exec.Command(bin, "control", "--manifests", dir, "--insecure", "--debounce", "20ms",
		"--listen", addr(ports[0]), "--rest", addr(ports[1]), "--ca-dir", t.TempDir(),
		"--trust-domain", cluster+".causeway.local", "--cluster", cluster, "--federation-listen", addr(ports[2]),
		"--gateway-addr", gateway, "--federation-heartbeat", "200ms", "--gateway-probe-interval", "200ms")
	logf, err := os.Create(filepath.Join(t.TempDir(), cluster+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
			t.Errorf("%s: control did not stop on SIGTERM", cluster)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s control log:\n%s", cluster, b)
		}
		logf.Close()
	})
	waitHTTP(t, p.rest+"/api/v1/links")
	return p
}

func (p *controlProc) services(t *testing.T) map[string]spec.Service {
	t.Helper()
	var l struct{ Items []spec.Service }
	getJSON(t, p.rest+"/api/v1/services", &l)
	out := map[string]spec.Service{}
	for _, s := range l.Items {
		out[s.Key.String()] = s
	}
	return out
}

func linkCLI(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"link"}, args...)...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("causeway link %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

// TestLinkTwoControlPlanes runs two `causeway control` processes (east,
// west) with federation, peers them with `causeway link generate` and
// `causeway link apply`, checks that east's exported service appears in
// west's served snapshot as shop/web-east behind east's gateway, that a
// newly exported service follows, and that `causeway link remove` on west
// clears both sides.
func TestLinkTwoControlPlanes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two control planes")
	}
	bin := filepath.Join(t.TempDir(), "causeway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ports, err := loopback.FreePorts(7)
	if err != nil {
		t.Fatal(err)
	}
	gateway := "127.0.0.1:" + strconv.Itoa(ports[6])
	east := startControlProc(t, bin, "east", exportedService("web", 8080), gateway, ports[0:3])
	west := startControlProc(t, bin, "west", "", "127.0.0.1:1", ports[3:6])

	token := strings.TrimSpace(linkCLI(t, bin, "generate", "--control-api", east.rest, "--ttl", "1m"))
	if !strings.HasPrefix(token, "causeway-peer-v1.") {
		t.Fatalf("link generate printed %q", token)
	}
	start := time.Now()
	if out := linkCLI(t, bin, "apply", "--control-api", west.rest, token); !strings.Contains(out, "linked with cluster east") {
		t.Errorf("link apply printed %q", out)
	}
	wait := func(what string, cond func() bool) time.Duration {
		t.Helper()
		began := time.Now()
		for !cond() {
			if time.Since(began) > 15*time.Second {
				t.Fatalf("after 15s: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(began)
	}
	wait("west serves shop/web-east", func() bool { _, ok := west.services(t)["shop/web-east"]; return ok })
	t.Logf("link apply -> shop/web-east in west's served snapshot: %s", time.Since(start).Round(time.Millisecond))
	web := west.services(t)["shop/web-east"]
	if len(web.Endpoints) != 1 || web.Endpoints[0].Addr != "127.0.0.1" || web.Endpoints[0].Port != int32(ports[6]) ||
		web.Endpoints[0].Gateway.String() != "spiffe://east.causeway.local/ns/causeway-system/sa/causeway-gateway" ||
		web.Endpoints[0].Remote != (spec.Key{Namespace: "shop", Name: "web"}) || web.Export {
		t.Errorf("west's shop/web-east = %+v", web)
	}
	if len(web.Ports) != 1 || web.Ports[0].Port != 8080 {
		t.Errorf("west's shop/web-east ports = %+v", web.Ports)
	}
	if _, ok := east.services(t)["shop/web-east"]; ok {
		t.Error("east imports its own export")
	}

	var listed []federation.Status
	if err := json.Unmarshal([]byte(linkCLI(t, bin, "list", "--control-api", east.rest, "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Cluster != "west" || listed[0].State != spec.LinkActive {
		t.Errorf("east's link list = %+v", listed)
	}
	if out := linkCLI(t, bin, "list", "--control-api", west.rest); !strings.Contains(out, "east.causeway.local") || !strings.Contains(out, "shop/web-east") {
		t.Errorf("west's link list table:\n%s", out)
	}

	// A second export, written into east's manifests, reaches west.
	edited := time.Now()
	if err := os.WriteFile(filepath.Join(east.dir, "svc.yaml"), []byte(exportedService("web", 8080)+exportedService("cart", 9090)), 0o644); err != nil {
		t.Fatal(err)
	}
	wait("west serves shop/cart-east", func() bool { _, ok := west.services(t)["shop/cart-east"]; return ok })
	t.Logf("manifest edit on east -> shop/cart-east in west's served snapshot: %s (east debounce 20ms)", time.Since(edited).Round(time.Millisecond))

	removed := time.Now()
	if out := linkCLI(t, bin, "remove", "--control-api", west.rest, "east"); !strings.Contains(out, "removed") {
		t.Errorf("link remove printed %q", out)
	}
	wait("no imports on west and no links on either side", func() bool {
		svcs := west.services(t)
		var e, w []federation.Status
		_ = json.Unmarshal([]byte(linkCLI(t, bin, "list", "--control-api", east.rest, "-o", "json")), &e)
		_ = json.Unmarshal([]byte(linkCLI(t, bin, "list", "--control-api", west.rest, "-o", "json")), &w)
		return !slices.ContainsFunc(mapsKeys(svcs), func(k string) bool { return strings.HasSuffix(k, "-east") }) && len(e) == 0 && len(w) == 0
	})
	t.Logf("link remove -> both control planes clean: %s", time.Since(removed).Round(time.Millisecond))
}

func mapsKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestLinkUsage: flag mistakes exit 2 before anything is dialled.
func TestLinkUsage(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
	}{
		{"federation without a cluster name", []string{"control", "--insecure", "--manifests", dir, "--listen", "127.0.0.1:0", "--rest", "", "--federation-listen", "127.0.0.1:0"}},
		{"cluster without federation", []string{"control", "--insecure", "--manifests", dir, "--listen", "127.0.0.1:0", "--rest", "", "--cluster", "east"}},
		{"bad cluster name", []string{"control", "--insecure", "--manifests", dir, "--listen", "127.0.0.1:0", "--rest", "", "--federation-listen", "127.0.0.1:0", "--cluster", "East_1", "--ca-dir", t.TempDir()}},
		{"bad gateway id", []string{"control", "--insecure", "--manifests", dir, "--listen", "127.0.0.1:0", "--rest", "", "--federation-listen", "127.0.0.1:0", "--cluster", "east", "--gateway-id", "nope"}},
		{"apply without a token", []string{"link", "apply"}},
		{"apply with a token and a file", []string{"link", "apply", "x", "-f", "y"}},
		{"remove without a cluster", []string{"link", "remove"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code := run(tc.args); code != 2 {
				t.Fatalf("causeway %v exited %d, want 2", tc.args, code)
			}
		})
	}
}
