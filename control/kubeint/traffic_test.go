package kubeint_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/internal/loopback"
)

// The apiserver refuses loopback addresses in EndpointSlices, as it must: a
// pod has a real address. So the "pods" of this test live in a network
// namespace the test creates, joined to this one by a veth pair: the server
// sidecars and their apps run inside it (`ip netns exec`), each sidecar
// listening on the pod address and target port as if traffic had been
// redirected to it, each app on the namespace's own loopback. The client
// sidecars, the control plane and the apiserver stay outside.
type podNet struct {
	name       string
	hostIP     string // this side of the veth
	podIP      string // inside the namespace
	requireEnv bool
}

func newPodNet(t *testing.T) *podNet {
	t.Helper()
	require := os.Getenv("CAUSEWAY_REQUIRE_NETNS") != ""
	skip := func(why string) {
		if require {
			t.Fatalf("%s (CAUSEWAY_REQUIRE_NETNS is set)", why)
		}
		t.Skip(why + "; set CAUSEWAY_REQUIRE_NETNS=1 to make this a failure")
	}
	if os.Geteuid() != 0 {
		skip("needs root to create a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		skip("needs iproute2's ip")
	}
	n := os.Getpid() % 250
	p := &podNet{name: fmt.Sprintf("cwkt%d", os.Getpid()), hostIP: fmt.Sprintf("10.251.%d.1", n), podIP: fmt.Sprintf("10.251.%d.2", n)}
	host, peer := fmt.Sprintf("cwh%d", os.Getpid()), fmt.Sprintf("cwp%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", p.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.name).Run() }) // removes the veth pair too
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	run("link", "set", peer, "netns", p.name)
	run("addr", "add", p.hostIP+"/30", "dev", host)
	run("link", "set", host, "up")
	run("-n", p.name, "addr", "add", p.podIP+"/30", "dev", peer)
	run("-n", p.name, "link", "set", peer, "up")
	run("-n", p.name, "link", "set", "lo", "up")
	return p
}

// child starts a process this test owns (inside the pod namespace when
// netns is set) and stops it by its PID at cleanup.
func child(t *testing.T, dir, name string, netns string, argv ...string) {
	t.Helper()
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...) // ip execs argv: same PID
	}
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("--- %s log (last 2KB):\n%s", name, tailBytes(b, 2048))
		}
	})
}

func tailBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func writeJSON(t *testing.T, path string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePorts returns n distinct free ports for the children this test
// starts, from below the kernel's ephemeral range (loopback.FreePorts): a
// port read back from ":0" and released is one the kernel may give any
// outgoing connection of the tests running in parallel before the child
// binds it.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	ports, err := loopback.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, n)
	for i, p := range ports {
		out[i] = strconv.Itoa(p)
	}
	return out
}

func meshYAML(podIP string, v1, v2 int) string {
	svc := func(name, version string, target int) string {
		return fmt.Sprintf(`---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %[1]s, namespace: bookstore}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: bookstore}
spec:
  selector: {app: bookstore, version: %[2]s}
  ports: [{name: http, port: 14001, targetPort: %[3]d}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: bookstore}
spec:
  selector: {matchLabels: {app: bookstore, version: %[2]s}}
  template:
    metadata: {labels: {app: bookstore, version: %[2]s}}
    spec:
      serviceAccountName: %[1]s
      containers: [{name: app, image: demo}]
---
# No scheduler or kubelet runs here: the Pod exists only in the API, which
# is all the control plane reads (its identity is the endpoint's identity).
apiVersion: v1
kind: Pod
metadata:
  name: %[1]s-0
  namespace: bookstore
  labels: {app: bookstore, version: %[2]s}
  annotations: {causeway.dev/injected: "true"} # as the injector leaves it
spec:
  serviceAccountName: %[1]s
  containers: [{name: app, image: demo}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: %[1]s-pods, namespace: bookstore, labels: {kubernetes.io/service-name: %[1]s}}
addressType: IPv4
ports: [{name: http, port: %[3]d}]
endpoints:
- addresses: [%[4]s]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: %[1]s-0, namespace: bookstore}
`, name, version, target, podIP)
	}
	target := func(dest string) string {
		return fmt.Sprintf(`---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: bookbuyer-to-%[1]s, namespace: bookstore}
spec:
  destination: {kind: ServiceAccount, name: %[1]s, namespace: bookstore}
  sources: [{kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer}]
  rules: [{kind: HTTPRouteGroup, name: books, matches: [read]}]
`, dest)
	}
	return `apiVersion: v1
kind: Namespace
metadata: {name: bookstore}
---
apiVersion: v1
kind: Service
metadata: {name: bookstore, namespace: bookstore}
spec:
  selector: {app: bookstore}
  ports: [{name: http, port: 14001}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: books, namespace: bookstore}
spec:
  matches: [{name: read, pathRegex: /books, methods: [GET]}]
` + svc("bookstore-v1", "v1", 14011) + svc("bookstore-v2", "v2", 14012) +
		target("bookstore-v1") + target("bookstore-v2") + splitYAML(v1, v2)
}

func splitYAML(v1, v2 int) string {
	return fmt.Sprintf(`---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: bookstore-split, namespace: bookstore}
spec:
  service: bookstore
  backends: [{service: bookstore-v1, weight: %d}, {service: bookstore-v2, weight: %d}]
`, v1, v2)
}

// TestKubeTrafficFollows: SMI resources applied to a real apiserver drive
// real traffic between Causeway sidecars (mTLS, SVIDs from the Workload
// API, config from `causeway control --kube`): the split's ratios show in
// which app answers, shifting the split shifts them, and deleting the
// TrafficTarget turns the caller's requests into 403s.
func TestKubeTrafficFollows(t *testing.T) {
	pn := newPodNet(t)
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := kubetest.InstallCRDs(ctx, cfg, "../../deploy/crds/split.smi-spec.io.yaml", "../../deploy/crds/access.smi-spec.io.yaml",
		"../../deploy/crds/specs.smi-spec.io.yaml", "../../deploy/crds/causeway.dev.yaml"); err != nil {
		t.Fatal(err)
	}
	apply, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"bookbuyer", "bookthief"} {
		if err := apply.ApplyYAML(ctx, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+ns+"}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: "+ns+", namespace: "+ns+"}\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := apply.ApplyYAML(ctx, meshYAML(pn.podIP, 90, 10)); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kubeconfig, bin := kubeconfigAndBinary(t, ctx, cfg, dir)

	// One CA: the control plane loads it from --ca-dir; each sidecar gets its
	// SVID from a Workload API of that CA (one per identity: every process
	// here runs as the same uid).
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	caDir := filepath.Join(dir, "ca")
	c, err := ca.New(ctx, ca.Options{TrustDomain: td, Store: ca.DirStore{Dir: caDir}, Logger: identitytest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	sock := func(ident string) string {
		return identitytest.StartWorkloadAPI(t, c, identitytest.WorkloadAPI{Entries: identitytest.Self(t, ident, "")})
	}
	// The control plane's two, then each client sidecar's listener and admin.
	ports := freePorts(t, 6)
	grpcAddr := net.JoinHostPort(pn.hostIP, ports[0])
	child(t, dir, "control", "", bin, "control", "--kubeconfig", kubeconfig, "--ca-dir", caDir,
		"--listen", grpcAddr, "--rest", "127.0.0.1:"+ports[1], "--debounce", "50ms")
	controlID := "spiffe://cluster.local/ns/causeway/sa/control"

	// Server side, inside the pod namespace.
	for _, v := range []struct{ name, port, admin string }{{"bookstore-v1", "14011", "15000"}, {"bookstore-v2", "14012", "15001"}} {
		child(t, dir, v.name+"-app", pn.name, bin, "demo-app", "--name", v.name, "--listen", "127.0.0.1:"+v.port)
		boot := writeJSON(t, filepath.Join(dir, v.name+".json"), map[string]any{
			"admin":   "127.0.0.1:" + v.admin,
			"inbound": map[string]any{"listen": net.JoinHostPort(pn.podIP, v.port), "appHost": "127.0.0.1"},
		})
		child(t, dir, v.name+"-sidecar", pn.name, bin, "proxy", "--config", boot, "--control", grpcAddr, "--control-id", controlID,
			"--spiffe-socket", sock("bookstore/"+v.name), "--node", v.name+"-0", "--service", "bookstore/"+v.name)
	}
	// Client sidecars, outside.
	callers := map[string]string{}
	admins := map[string]string{}
	for i, sa := range []string{"bookbuyer", "bookthief"} {
		port := ports[2+2*i]
		admins[sa] = "127.0.0.1:" + ports[3+2*i]
		boot := writeJSON(t, filepath.Join(dir, sa+".json"), map[string]any{
			"admin":    admins[sa],
			"outbound": map[string]any{"ports": []map[string]any{{"service": "bookstore/bookstore", "port": 14001, "listen": "127.0.0.1:" + port}}},
		})
		child(t, dir, sa+"-sidecar", "", bin, "proxy", "--config", boot, "--control", grpcAddr, "--control-id", controlID,
			"--spiffe-socket", sock(sa+"/"+sa), "--node", sa+"-0")
		callers[sa] = "http://127.0.0.1:" + port
	}

	hc := &http.Client{Timeout: 5 * time.Second}
	defer hc.CloseIdleConnections()
	// send makes n requests as a caller and counts answers by app name, or by
	// status when it is not a 200.
	send := func(caller string, n int) map[string]int {
		got := map[string]int{}
		for range n {
			resp, err := hc.Get(callers[caller] + "/books/1")
			if err != nil {
				got["error"]++
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				got[strconv.Itoa(resp.StatusCode)]++
				continue
			}
			var r struct{ Name string }
			if json.Unmarshal(body, &r) != nil {
				got["bad body"]++
				continue
			}
			got[r.Name]++
		}
		return got
	}
	// eventually retries a check until it holds or 30s pass.
	eventually := func(what string, check func() (bool, string)) time.Duration {
		t.Helper()
		start := time.Now()
		var last string
		for time.Since(start) < 30*time.Second {
			ok, state := check()
			if ok {
				return time.Since(start)
			}
			last = state
			time.Sleep(100 * time.Millisecond)
		}
		if resp, err := http.Get("http://" + admins["bookbuyer"] + "/config"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("bookbuyer /config: %s", b)
		}
		if resp, err := hc.Get(callers["bookbuyer"] + "/books/1"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("bookbuyer answer: %d %v %s", resp.StatusCode, resp.Header, b)
		}
		t.Fatalf("%s: not within 30s; last: %s", what, last)
		return 0
	}
	share := func(want string, lo, hi float64) func() (bool, string) {
		return func() (bool, string) {
			got := send("bookbuyer", 400)
			f := float64(got[want]) / 400
			return f >= lo && f <= hi, fmt.Sprint(got)
		}
	}

	t.Run("a 90/10 split as the caller sees it", func(t *testing.T) {
		d := eventually("bookbuyer reaches the bookstore at 90/10", share("bookstore-v1", 0.85, 0.95))
		t.Logf("serving after %v", d.Round(time.Millisecond))
	})
	t.Run("bookthief is kept out", func(t *testing.T) {
		// Its sidecar started with bookbuyer's but may get its config
		// later on a loaded machine; until then it cannot answer 403.
		eventually("bookthief's sidecar in sync", func() (bool, string) {
			resp, err := http.Get("http://127.0.0.1:" + ports[1] + "/api/v1/proxies/bookthief-0")
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			var st struct {
				InSync bool `json:"inSync"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return false, fmt.Sprintf("REST %s: %v", resp.Status, err)
			}
			return st.InSync, fmt.Sprintf("in sync: %v", st.InSync)
		})
		if got := send("bookthief", 20); got["403"] != 20 {
			t.Fatalf("bookthief got %v, want 20 × 403", got)
		}
	})
	t.Run("shifting the split shifts traffic", func(t *testing.T) {
		if err := apply.ApplyYAML(ctx, splitYAML(0, 100)); err != nil {
			t.Fatal(err)
		}
		d := eventually("all traffic to bookstore-v2", share("bookstore-v2", 1, 1))
		t.Logf("traffic moved %v after the apply", d.Round(time.Millisecond))
	})
	t.Run("deleting the TrafficTarget denies the caller", func(t *testing.T) {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion("access.smi-spec.io/v1alpha3")
		obj.SetKind("TrafficTarget")
		obj.SetNamespace("bookstore")
		obj.SetName("bookbuyer-to-bookstore-v2")
		res, _, err := apply.Resource(obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := res.Delete(ctx, obj.GetName(), metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		d := eventually("bookbuyer denied by bookstore-v2", func() (bool, string) {
			got := send("bookbuyer", 20)
			return got["403"] == 20, fmt.Sprint(got)
		})
		t.Logf("403s %v after the delete", d.Round(time.Millisecond))
	})
}
