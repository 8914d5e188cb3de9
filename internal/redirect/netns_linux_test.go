package redirect

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequireNetnsEnv makes the real network-namespace test fail, instead of
// skip, when it cannot run (CI sets it after scripts/netns-tools.sh).
const RequireNetnsEnv = "CAUSEWAY_REQUIRE_NETNS"

// netnsSkip skips (or fails, with CAUSEWAY_REQUIRE_NETNS) a test that needs
// root, ip(8) and iptables-restore.
func netnsSkip(t *testing.T) {
	t.Helper()
	why := ""
	switch {
	case os.Geteuid() != 0:
		why = "needs root to create network namespaces"
	default:
		for _, tool := range []string{"ip", "iptables-save", "iptables-restore"} {
			if _, err := exec.LookPath(tool); err != nil {
				why = tool + " not found (install Debian's iproute2 and iptables: scripts/netns-tools.sh)"
				break
			}
		}
	}
	if why == "" {
		return
	}
	if os.Getenv(RequireNetnsEnv) != "" {
		t.Fatalf("%s is set but the netns test cannot run: %s", RequireNetnsEnv, why)
	}
	t.Skip(why)
}

var nsSeq atomic.Int32

// pair is two network namespaces joined by a veth pair: "pod", where the
// rules are applied, and "peer", the rest of the network.
type pair struct {
	pod, peer     string // namespace names
	podIP, peerIP string
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newPair creates the namespaces; they (and the veth in them) are deleted
// when the test ends.
func newPair(t *testing.T) pair {
	t.Helper()
	n := nsSeq.Add(1)
	tag := fmt.Sprintf("cw%d-%d", os.Getpid()%100000, n)
	p := pair{pod: tag + "-pod", peer: tag + "-peer",
		podIP: fmt.Sprintf("10.213.%d.1", n), peerIP: fmt.Sprintf("10.213.%d.2", n)}
	if out, err := exec.Command("ip", "netns", "add", p.pod).CombinedOutput(); err != nil {
		if os.Getenv(RequireNetnsEnv) == "" {
			t.Skipf("cannot create a network namespace here: %v: %s", err, out)
		}
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.pod).Run() })
	ip(t, "netns", "add", p.peer)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.peer).Run() })
	// veth names are limited to 15 bytes.
	va, vb := fmt.Sprintf("cwa%d", n), fmt.Sprintf("cwb%d", n)
	ip(t, "link", "add", va, "netns", p.pod, "type", "veth", "peer", "name", vb, "netns", p.peer)
	for _, s := range []struct{ ns, dev, addr string }{{p.pod, va, p.podIP}, {p.peer, vb, p.peerIP}} {
		ip(t, "-n", s.ns, "link", "set", "lo", "up")
		ip(t, "-n", s.ns, "addr", "add", s.addr+"/24", "dev", s.dev)
		ip(t, "-n", s.ns, "link", "set", s.dev, "up")
	}
	return p
}

// inNetns runs fn on an OS thread moved into namespace ns. Sockets fn
// creates belong to ns for good. The thread is never unlocked, so the Go
// runtime discards it when fn returns instead of reusing it elsewhere.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		fn()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// serve listens on port in ns and answers every connection with
// "<name> orig=<SO_ORIGINAL_DST>" (or "orig=none" for a connection that
// was not redirected), then closes it.
func serve(t *testing.T, ns string, port int, name string) {
	t.Helper()
	var ln net.Listener
	inNetns(t, ns, func() {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			t.Errorf("listen %s:%d: %v", ns, port, err)
		}
	})
	if ln == nil {
		t.FailNow()
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			orig := "none"
			if a, err := OriginalDst(c.(*net.TCPConn)); err == nil && a.Port() != uint16(port) {
				orig = a.String()
			}
			fmt.Fprintf(c, "%s orig=%s", name, orig)
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
}

// dial connects from ns to addr and returns what the server said.
func dial(t *testing.T, ns, addr string) string {
	t.Helper()
	var got string
	inNetns(t, ns, func() {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			got = "dial error: " + err.Error()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		if err != nil {
			got += " read error: " + err.Error()
		}
	})
	return got
}

// TestNetnsRedirect applies real rule sets with iptables-restore inside a
// network namespace the test creates and checks where real TCP connections
// land: redirected ones on the target port (which reads the original
// destination back with SO_ORIGINAL_DST), excluded ones where they were
// addressed.
func TestNetnsRedirect(t *testing.T) {
	netnsSkip(t)
	const (
		app     = 8080
		metrics = 9090
		inPort  = 15006
		outPort = 15001
		remote  = 8081
	)
	type conn struct {
		from string // "pod" or "peer"
		to   string // "pod", "peer" or "loopback"
		port int
		want string
	}
	cases := []struct {
		name  string
		rules func(p pair) Rules
		conns []conn
	}{
		{"inbound redirected, proxy port and skipped port not", func(pair) Rules {
			return Rules{InboundPort: inPort, SkipInboundPorts: []uint16{metrics}}
		}, []conn{
			{"peer", "pod", app, "proxy orig=POD:8080"},
			{"peer", "pod", inPort, "proxy orig=none"},
			{"peer", "pod", metrics, "metrics orig=none"},
		}},
		{"inbound from a skipped source (kubelet's node address)", func(p pair) Rules {
			return Rules{InboundPort: inPort, SkipInboundSources: mustPrefixes(t, p.peerIP)}
		}, []conn{
			{"peer", "pod", app, "app orig=none"},
		}},
		{"outbound redirected; loopback not", func(pair) Rules {
			return Rules{OutboundPort: outPort, ProxyUID: uid(1337)}
		}, []conn{
			{"pod", "peer", remote, "proxy orig=PEER:8081"},
			{"pod", "loopback", app, "app orig=none"},
		}},
		{"outbound from the proxy's uid is not redirected", func(pair) Rules {
			// The test runs as this uid, so it plays the proxy.
			return Rules{OutboundPort: outPort, ProxyUID: uid(uint32(os.Getuid()))}
		}, []conn{
			{"pod", "peer", remote, "remote orig=none"},
		}},
		{"outbound to a skipped port", func(p pair) Rules {
			return Rules{OutboundPort: outPort, ProxyUID: uid(1337), SkipOutboundPorts: []uint16{remote}}
		}, []conn{
			{"pod", "peer", remote, "remote orig=none"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t)
			serve(t, p.pod, app, "app")
			serve(t, p.pod, metrics, "metrics")
			serve(t, p.pod, inPort, "proxy")
			serve(t, p.pod, outPort, "proxy")
			serve(t, p.peer, remote, "remote")
			rn := Runner{Prefix: []string{"ip", "netns", "exec", p.pod}}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := rn.Apply(ctx, c.rules(p)); err != nil {
				t.Fatal(err)
			}
			for _, cn := range c.conns {
				ns, host := p.pod, p.podIP
				if cn.from == "peer" {
					ns = p.peer
				}
				switch cn.to {
				case "peer":
					host = p.peerIP
				case "loopback":
					host = "127.0.0.1"
				}
				want := strings.NewReplacer("POD", p.podIP, "PEER", p.peerIP).Replace(cn.want)
				addr := fmt.Sprintf("%s:%d", host, cn.port)
				if got := dial(t, ns, addr); got != want {
					t.Errorf("%s -> %s: got %q, want %q", cn.from, addr, got, want)
				}
			}
		})
	}
}

// TestNetnsApplyIdempotent applies the same rules twice (a restarted init
// container) and a changed set a third time: the nat table holds one jump
// per chain and only the latest rules.
func TestNetnsApplyIdempotent(t *testing.T) {
	netnsSkip(t)
	p := newPair(t)
	rn := Runner{Prefix: []string{"ip", "netns", "exec", p.pod}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sets := []Rules{
		{InboundPort: 4143, OutboundPort: 4140, ProxyUID: uid(2102)},
		{InboundPort: 4143, OutboundPort: 4140, ProxyUID: uid(2102)},
		{InboundPort: 4143, OutboundPort: 4140, ProxyUID: uid(2102), SkipInboundPorts: []uint16{9090}},
	}
	for i, r := range sets {
		if _, err := rn.Apply(ctx, r); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	out, err := exec.Command("ip", "netns", "exec", p.pod, "iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatal(err)
	}
	save := string(out)
	for _, want := range []struct {
		rule string
		n    int
	}{
		{"-A PREROUTING -p tcp -j CAUSEWAY_INBOUND", 1},
		{"-A OUTPUT -p tcp -j CAUSEWAY_OUTPUT", 1},
		{"-A CAUSEWAY_IN_REDIRECT -p tcp -j REDIRECT --to-ports 4143", 1},
		{"-A CAUSEWAY_INBOUND -p tcp -m multiport --dports 9090 -j RETURN", 1},
		{"-A CAUSEWAY_OUTPUT -m owner --uid-owner 2102 -j RETURN", 1},
	} {
		if n := strings.Count(save, want.rule+"\n"); n != want.n {
			t.Errorf("%q appears %d times, want %d; iptables-save:\n%s", want.rule, n, want.n, save)
		}
	}
}

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	ps, err := ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}
