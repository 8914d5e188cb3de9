package redirect

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// sidecarEnv names the directory a sidecar helper reads: bootstrap.json,
// svid.pem, key.pem, bundle.pem and, optionally, app (the port of a demo
// app to run next to the proxy).
const sidecarEnv = "CAUSEWAY_REDIRECT_SIDECAR_DIR"

const (
	trAdmin       = "127.0.0.1:9901"
	trOutPort     = 15001
	trInPort      = 4143
	trAppPort     = 8080
	trUnknownPort = 9999
	trDBPort      = 7000
	trClusterIP   = "10.96.0.10" // books' virtual address; nothing owns it
	trTD          = "test.local"
	nobody        = "65534"
)

// TestSidecarHelper is not a test: it is a pod (a Causeway proxy with mTLS
// and maybe an app) when sidecarEnv is set.
func TestSidecarHelper(t *testing.T) {
	dir := os.Getenv(sidecarEnv)
	if dir == "" {
		t.Skip("helper process for TestNetnsTransparent")
	}
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "app")); err == nil {
		// The app on its port, and the same app speaking h2c (prior
		// knowledge) on the next one.
		port, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		for i, h2 := range []bool{false, true} {
			ln, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port+i))
			if err != nil {
				fail(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// The caller's verified identity, when the request came
				// over mTLS, is in the sidecar's X-Forwarded-Client-Cert.
				fmt.Fprintf(w, "books from %s %s xfcc=%s", r.RemoteAddr, r.Proto, r.Header.Get("X-Forwarded-Client-Cert"))
			})}
			if h2 {
				srv.Protocols = new(http.Protocols)
				srv.Protocols.SetUnencryptedHTTP2(true)
			}
			go func() { _ = srv.Serve(ln) }()
		}
	}
	boot, err := proxy.LoadBootstrap(filepath.Join(dir, "bootstrap.json"))
	if err != nil {
		fail(err)
	}
	svid, err := x509svid.Load(filepath.Join(dir, "svid.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		fail(err)
	}
	bundle, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString(trTD), filepath.Join(dir, "bundle.pem"))
	if err != nil {
		fail(err)
	}
	p := proxy.New(boot, proxy.Options{SVIDs: svid, Bundles: bundle})
	if err := p.Start(); err != nil {
		fail(err)
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	_ = p.Close()
	os.Exit(0)
}

// writeSidecar writes a sidecar helper's directory.
func writeSidecar(t *testing.T, ca *proxytest.CA, id spiffeid.ID, boot *proxy.Bootstrap, app int) string {
	t.Helper()
	dir := t.TempDir()
	svid := ca.SVID(t, id, time.Time{}, time.Time{})
	certs, key, err := svid.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var bundle []byte
	for _, c := range ca.Bundle().X509Authorities() {
		bundle = append(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	bj, err := json.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"svid.pem": certs, "key.pem": key, "bundle.pem": bundle, "bootstrap.json": bj}
	if app != 0 {
		files["app"] = fmt.Appendf(nil, "%d", app)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// appCurl is the pod's app: curl run in ns as uid nobody, so the OUTPUT
// rules (which exempt the proxy's uid, root here) redirect it.
func appCurl(t *testing.T, ns, url string, curlArgs ...string) string {
	t.Helper()
	args := append([]string{"netns", "exec", ns, "setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups",
		"curl", "-sS", "--max-time", "5"}, curlArgs...)
	out, err := exec.Command("ip", append(args, url)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("curl error: %v: %s", err, out)
	}
	return string(out)
}

// asNobody runs fn on a thread moved into ns whose uid is then nobody, so
// sockets fn creates are redirected by the OUTPUT rules. setresuid is made
// as a raw system call: it changes this thread only (syscall.Setresuid
// would change every thread of the test), and inNetns never reuses it.
func asNobody(t *testing.T, ns string, fn func()) {
	t.Helper()
	inNetns(t, ns, func() {
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
			t.Errorf("setresuid: %v", e)
			return
		}
		fn()
	})
}

// keepAliveGets sends n GETs one after another on one connection to addr
// and returns each one's latency and the number of 200s whose body right
// accepts. The connection is dialled on the calling thread (its uid decides
// whether it is redirected); the requests run there too.
func keepAliveGets(addr string, right func(string) bool, n int) ([]time.Duration, int, error) {
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	lat := make([]time.Duration, 0, n)
	ok := 0
	for range n {
		t0 := time.Now()
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: books.shop\r\n\r\n"); err != nil {
			return lat, ok, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return lat, ok, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return lat, ok, err
		}
		lat = append(lat, time.Since(t0))
		if resp.StatusCode == 200 && right(string(b)) {
			ok++
		}
	}
	return lat, ok, nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// scrape reads a sidecar's metrics from inside ns and sums the series of
// name whose labels include want.
func scrape(t *testing.T, ns, name string, want map[string]string) float64 {
	t.Helper()
	var sum float64
	inNetns(t, ns, func() {
		c, err := net.DialTimeout("tcp4", trAdmin, 3*time.Second)
		if err != nil {
			t.Errorf("metrics of %s: %v", ns, err)
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, name+"{") {
				continue
			}
			ok := true
			for k, v := range want {
				if !strings.Contains(line, fmt.Sprintf("%s=%q", k, v)) {
					ok = false
				}
			}
			if !ok {
				continue
			}
			var f float64
			if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &f); err == nil {
				sum += f
			}
		}
	})
	return sum
}

// TestNetnsTransparent runs two pods in network namespaces with the
// injector's rules and real Causeway sidecars that hold SVIDs of one CA:
//
//	pod "web" (client): outbound.transparent on 15001 (OUTPUT REDIRECT,
//	  proxy uid exempt), inbound.transparent on 4143, strict mode; its app
//	  is curl running as nobody.
//	pod "books" (peer): the books app on 8080 (http) and db on 7000 (tcp),
//	  inbound.transparent on 4143 (PREROUTING REDIRECT), permissive mode;
//	  an unmeshed server on 9999 (skipped by the rules).
//
// The web app dials the books endpoint (peer IP:8080) directly: the
// transparent listener maps it to shop/books:80 and routes it at L7 over
// mTLS to the books sidecar, which hands it to the app from loopback. A
// destination in no service passes through to where it was sent. An
// unmeshed client reaches the books app through the permissive sidecar's
// passthrough, and is closed by web's strict one.
func TestNetnsTransparent(t *testing.T) {
	netnsSkip(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv not found (util-linux)")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not found")
	}
	p := newPair(t)
	ca := proxytest.NewCA(t, trTD)
	webID, booksID := ca.ID("shop", "web"), ca.ID("shop", "books")
	books := spec.Key{Namespace: "shop", Name: "books"}
	web := spec.Key{Namespace: "shop", Name: "web"}
	httpPort := spec.Port{Name: "http", Port: 80, Protocol: spec.ProtocolHTTP, TargetPort: trAppPort}
	db := spec.Key{Namespace: "shop", Name: "db"}
	dbPort := spec.Port{Name: "db", Port: trDBPort, Protocol: spec.ProtocolTCP}
	h2Port := spec.Port{Name: "h2", Port: 81, Protocol: spec.ProtocolHTTP2, TargetPort: trAppPort + 1}

	webBoot := &proxy.Bootstrap{
		Admin:    trAdmin,
		Inbound:  proxy.InboundConfig{Listen: fmt.Sprintf("0.0.0.0:%d", trInPort), Transparent: true},
		Outbound: proxy.OutboundConfig{Transparent: fmt.Sprintf("127.0.0.1:%d", trOutPort)},
		Config: &spec.NodeConfig{Version: "v1", TrustDomain: trTD, Mode: spec.ModeStrict,
			Node:    spec.Node{ID: "web-0", Services: []spec.Key{web}, Identity: webID},
			Inbound: spec.Inbound{Services: []spec.InboundService{{Key: web, Ports: []spec.Port{httpPort}}}},
			Upstreams: []spec.Upstream{
				{Service: books, Ports: []spec.Port{httpPort, h2Port}, ClusterIPs: []string{trClusterIP}, Default: []spec.WeightedCluster{{Service: books, Weight: 1000}}},
				{Service: db, Ports: []spec.Port{dbPort}, Default: []spec.WeightedCluster{{Service: db, Weight: 1000}}},
			},
			Clusters: []spec.Cluster{
				{Service: books, Ports: []spec.Port{httpPort, h2Port}, Identities: []spiffeid.ID{booksID},
					Endpoints: []spec.Endpoint{
						{Addr: p.peerIP, Port: trAppPort, ServicePort: 80, Ready: true, Identity: booksID},
						{Addr: p.peerIP, Port: trAppPort + 1, ServicePort: 81, Ready: true, Identity: booksID},
					}},
				{Service: db, Ports: []spec.Port{dbPort}, Identities: []spiffeid.ID{booksID},
					Endpoints: []spec.Endpoint{{Addr: p.peerIP, Port: trDBPort, ServicePort: trDBPort, Ready: true, Identity: booksID}}},
			},
		},
	}
	booksBoot := &proxy.Bootstrap{
		Admin:   trAdmin,
		Inbound: proxy.InboundConfig{Listen: fmt.Sprintf("0.0.0.0:%d", trInPort), AppHost: "127.0.0.1", Transparent: true},
		Config: &spec.NodeConfig{Version: "v1", TrustDomain: trTD, Mode: spec.ModePermissive,
			Node: spec.Node{ID: "books-0", Services: []spec.Key{books, db}, Identity: booksID},
			Inbound: spec.Inbound{Services: []spec.InboundService{
				{Key: books, Ports: []spec.Port{httpPort, h2Port}},
				{Key: db, Ports: []spec.Port{dbPort}},
			}},
		},
	}
	startHelper(t, p.pod, "^TestSidecarHelper$", sidecarEnv+"="+writeSidecar(t, ca, webID, webBoot, 0))
	startHelper(t, p.peer, "^TestSidecarHelper$", sidecarEnv+"="+writeSidecar(t, ca, booksID, booksBoot, trAppPort))
	serve(t, p.peer, trUnknownPort, "unmeshed")
	serve(t, p.peer, trDBPort, "db")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := uint32(0) // the sidecars run as root here; curl, the app, as nobody
	for ns, r := range map[string]Rules{
		p.pod:  {InboundPort: trInPort, OutboundPort: trOutPort, ProxyUID: &root},
		p.peer: {InboundPort: trInPort, SkipInboundPorts: []uint16{trUnknownPort}},
	} {
		if _, err := (Runner{Prefix: []string{"ip", "netns", "exec", ns}}).Apply(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	// A route, so connect() to the ClusterIP gets as far as the OUTPUT
	// chain (as a pod's default route does); nothing answers there.
	ip(t, "-n", p.pod, "route", "add", "10.96.0.0/16", "via", p.peerIP)

	booksURL := fmt.Sprintf("http://%s:%d/", p.peerIP, trAppPort)
	t.Run("outbound", func(t *testing.T) {
		cases := []struct {
			name string
			url  string
			curl []string
			want []string // each in the answer
		}{
			// From loopback with web's identity: through the books
			// sidecar over mTLS, so routed by web's sidecar into the mesh.
			{"endpoint address routed through the mesh", booksURL, nil, []string{"HTTP/1.1 xfcc=By=" + booksID.String(), "URI=" + webID.String()}},
			// h2c from the app, routed at L7 (HTTP/2 to the app as well).
			{"h2c endpoint routed through the mesh", fmt.Sprintf("http://%s:%d/", p.peerIP, trAppPort+1), []string{"--http2-prior-knowledge"}, []string{"HTTP/2.0 xfcc=By=" + booksID.String(), "URI=" + webID.String()}},
			// Only the mapping can answer: no one has this address.
			{"ClusterIP at the service port routed through the mesh", fmt.Sprintf("http://%s:80/", trClusterIP), nil, []string{"URI=" + webID.String()}},
			// orig=none: the unmeshed server saw a direct connection (no
			// sidecar of its own), so web's proxy forwarded it as sent.
			// A tcp port: routed at L4 (the metrics below tell it from a
			// passthrough, which the permissive books sidecar would also
			// deliver).
			{"tcp endpoint routed at L4 through the mesh", fmt.Sprintf("http://%s:%d/", p.peerIP, trDBPort), []string{"--http0.9"}, []string{"db orig=none"}},
			{"unknown destination passed through", fmt.Sprintf("http://%s:%d/", p.peerIP, trUnknownPort), []string{"--http0.9"}, []string{"unmeshed orig=none"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				got := appCurl(t, p.pod, c.url, c.curl...)
				for _, w := range c.want {
					if !strings.Contains(got, w) {
						t.Errorf("app GET %s: %q, want %q in it", c.url, got, w)
					}
				}
			})
		}
		metrics := []struct {
			ns, name string
			labels   map[string]string
		}{
			{p.pod, "causeway_transparent_connections_total", map[string]string{"direction": "outbound", "result": "routed"}},
			{p.pod, "causeway_transparent_connections_total", map[string]string{"direction": "outbound", "result": "passthrough"}},
			{p.pod, "causeway_responses_total", map[string]string{"direction": "outbound", "service": "shop/books", "backend": "shop/books", "status_code": "200"}},
			{p.peer, "causeway_inbound_authorization_total", map[string]string{"caller": webID.String()}},
			{p.pod, "causeway_tcp_connections_opened_total", map[string]string{"direction": "outbound", "service": "shop/db"}},
			{p.peer, "causeway_tcp_connections_opened_total", map[string]string{"direction": "inbound", "service": "shop/db"}},
		}
		for _, m := range metrics {
			if got := scrape(t, m.ns, m.name, m.labels); got < 1 {
				t.Errorf("%s %v = %v, want >= 1", m.name, m.labels, got)
			}
		}
	})

	t.Run("inbound passthrough", func(t *testing.T) {
		cases := []struct {
			name     string
			from, to string
			want     string
		}{
			// Root in the web pod is the proxy's uid: not redirected
			// outbound, so this is a plain client with no sidecar.
			{"permissive: unmeshed client reaches the app through the sidecar", p.pod, fmt.Sprintf("%s:%d", p.peerIP, trAppPort), "books from 127.0.0.1:"},
			// (no xfcc: the bytes are passed through, not routed at L7)
			{"strict: unmeshed client is closed", p.peer, fmt.Sprintf("%s:%d", p.podIP, trAppPort), "closed"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if got := meshGet(t, c.from, c.to, false); !strings.HasPrefix(got, c.want) {
					t.Errorf("GET %s from %s: %q, want %q...", c.to, c.from, got, c.want)
				}
			})
		}
		for _, m := range []struct {
			ns, result string
		}{{p.peer, "passthrough"}, {p.pod, "refused"}} {
			if got := scrape(t, m.ns, "causeway_transparent_connections_total", map[string]string{"direction": "inbound", "result": m.result}); got < 1 {
				t.Errorf("%s: inbound %s = %v, want >= 1", m.ns, m.result, got)
			}
		}
	})

	// Numbers, not a benchmark gate: sequential keep-alive GETs of the app
	// (a) redirected into web's sidecar, routed at L7 over mTLS to books'
	// sidecar (two proxy hops), and (b) from an unmeshed client, passed
	// through by books' sidecar at L4 (one hop). Every answer must be right.
	t.Run("latency", func(t *testing.T) {
		const n = 1000
		cases := []struct {
			name  string
			ns    string
			as    func(*testing.T, string, func())
			right func(string) bool
		}{
			{"transparent outbound, two sidecars, mTLS", p.pod, asNobody, func(b string) bool { return strings.Contains(b, "URI="+webID.String()) }},
			// No client certificate: the bytes were passed through.
			{"unmeshed client, inbound passthrough", p.pod, inNetns, func(b string) bool {
				return strings.HasPrefix(b, "books from 127.0.0.1:") && strings.HasSuffix(b, " xfcc=")
			}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var (
					lat []time.Duration
					ok  int
					err error
				)
				c.as(t, c.ns, func() { lat, ok, err = keepAliveGets(fmt.Sprintf("%s:%d", p.peerIP, trAppPort), c.right, n) })
				if err != nil || ok != n {
					t.Fatalf("%d of %d right (%v)", ok, n, err)
				}
				var total time.Duration
				for _, d := range lat {
					total += d
				}
				t.Logf("%d sequential GETs: p50 %v, p99 %v, %.0f req/s", n, quantile(lat, .5), quantile(lat, .99), float64(n)/total.Seconds())
			})
		}
	})
}
