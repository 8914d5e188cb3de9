package redirect

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/spec"
)

// helperEnv turns this test binary into the pod's processes (the app and
// its Causeway proxy) when started inside the pod's namespace: a proxy
// dials its app from whatever thread runs the request, so the whole process
// must live in the namespace, not one locked thread.
const helperEnv = "CAUSEWAY_REDIRECT_POD_HELPER"

const (
	podAppPort     = 8080
	podMetricsPort = 9090
	podProxyPort   = 4143
	podServicePort = 80
)

// TestPodHelper is not a test: it is the pod when helperEnv is set.
func TestPodHelper(t *testing.T) {
	if os.Getenv(helperEnv) == "" {
		t.Skip("helper process for TestNetnsProxyInbound")
	}
	for _, port := range []int{podAppPort, podMetricsPort} {
		ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		go func() {
			_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "app:%d from %s", port, r.RemoteAddr)
			}))
		}()
	}
	web := spec.Key{Namespace: "shop", Name: "web"}
	p := proxy.New(&proxy.Bootstrap{
		Admin:   "127.0.0.1:0",
		Inbound: proxy.InboundConfig{Listen: fmt.Sprintf("0.0.0.0:%d", podProxyPort), AppHost: "127.0.0.1"},
		Config: &spec.NodeConfig{Version: "v1", Mode: spec.ModePermissive, Node: spec.Node{ID: "web-0", Services: []spec.Key{web}},
			Inbound: spec.Inbound{Services: []spec.InboundService{{Key: web, Ports: []spec.Port{{Name: "http", Port: podServicePort, Protocol: spec.ProtocolHTTP, TargetPort: podAppPort}}}}}},
	}, proxy.Options{})
	if err := p.Start(); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	_ = p.Close()
	os.Exit(0)
}

// startPod runs TestPodHelper inside ns and waits for it to be ready. It is
// stopped, by PID, when the test ends.
func startPod(t *testing.T, ns string) {
	t.Helper()
	startHelper(t, ns, "^TestPodHelper$", helperEnv+"=1")
}

// startHelper runs the helper test run (a -test.run pattern) of this binary
// inside ns with env added, and waits until it prints "ready". It is
// stopped, by PID, when the test ends.
func startHelper(t *testing.T, ns, run string, env ...string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, os.Args[0], "-test.run="+run, "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("pod helper exited before it was ready")
			}
			if l == "ready" {
				go func() {
					for range lines {
					}
				}()
				return
			}
			if strings.HasPrefix(l, "error:") {
				t.Fatalf("pod helper: %s", l)
			}
		case <-deadline:
			t.Fatal("pod helper not ready within 30s")
		}
	}
}

// meshGet sends an HTTP GET from ns to addr the way a caller's Causeway
// proxy does to a meshed endpoint without mTLS: the 8-byte preamble naming
// the service port (proxy/doc.go), then the request. With preamble false it
// is a plain client that knows nothing of the mesh.
func meshGet(t *testing.T, ns, addr string, preamble bool) string {
	t.Helper()
	var got string
	inNetns(t, ns, func() {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			got = "dial error: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if preamble {
			var p [8]byte
			copy(p[:], "CWY\x01")
			binary.BigEndian.PutUint16(p[4:6], podServicePort)
			if _, err := c.Write(p[:]); err != nil {
				got = "write error: " + err.Error()
				return
			}
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: web.shop\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			got = "closed"
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got = string(b)
	})
	return got
}

// TestNetnsProxyInbound: the injected rules in front of a real Causeway
// proxy. A mesh caller dials the pod's address and the app's port (what the
// control plane publishes as the endpoint); the REDIRECT hands it to the
// proxy's inbound listener, whose preamble names the service port, and the
// app answers from loopback, i.e. through the proxy. The node's address and
// a skipped port reach the app directly; a plaintext client without the
// preamble is closed by the proxy, which is why the injector skips kubelet's
// address and why unmeshed clients need a proxy mode that reads
// SO_ORIGINAL_DST (see doc.go).
func TestNetnsProxyInbound(t *testing.T) {
	netnsSkip(t)
	p := newPair(t)
	startPod(t, p.pod)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rules := Rules{InboundPort: podProxyPort, SkipInboundPorts: []uint16{podMetricsPort}}
	if _, err := (Runner{Prefix: []string{"ip", "netns", "exec", p.pod}}).Apply(ctx, rules); err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf("%s:%d", p.podIP, podAppPort)
	metrics := fmt.Sprintf("%s:%d", p.podIP, podMetricsPort)
	cases := []struct {
		name     string
		addr     string
		preamble bool
		want     string // prefix of the answer
	}{
		{"mesh caller through the proxy", app, true, "app:8080 from 127.0.0.1:"},
		{"skipped port reaches the app directly", metrics, false, "app:9090 from " + p.peerIP + ":"},
		{"plaintext without preamble is closed by the proxy", app, false, "closed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := meshGet(t, p.peer, c.addr, c.preamble); !strings.HasPrefix(got, c.want) {
				t.Errorf("GET %s: %q, want %q...", c.addr, got, c.want)
			}
		})
	}
	// The node's address is skipped: kubelet's plaintext probe reaches the app.
	rules.SkipInboundSources = mustPrefixes(t, p.peerIP)
	if _, err := (Runner{Prefix: []string{"ip", "netns", "exec", p.pod}}).Apply(ctx, rules); err != nil {
		t.Fatal(err)
	}
	if got := meshGet(t, p.peer, app, false); !strings.HasPrefix(got, "app:8080 from "+p.peerIP+":") {
		t.Errorf("probe from the skipped source: %q", got)
	}
}
