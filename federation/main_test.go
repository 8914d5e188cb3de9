package federation

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"go.uber.org/goleak"

	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/spec"
)

// Test timings: heartbeats often enough that a failure is noticed within
// a couple of seconds; a timeout of 20 heartbeats, because the sides run in
// this one process, and -race on a loaded two-core machine can stall it for
// several hundred milliseconds: with 4 heartbeats (400 ms) such a stall
// failed a healthy link, and a test that checks the link is still active
// failed with it. (The reconnect's handshake is bounded by the timeout too.)
const (
	heartbeat = 100 * time.Millisecond
	timeout   = 2 * time.Second
	probeIvl  = 100 * time.Millisecond
)

// waitLimit is how long a test waits for what should follow a change: it only
// bounds a failure, so it is generous for a loaded machine; a condition met
// returns at once.
const waitLimit = 30 * time.Second

// side is one in-process control plane: its own trust domain, CA, bundle
// set and Links serving on a loopback port.
type side struct {
	name  string
	td    spiffeid.TrustDomain
	ca    *ca.CA
	set   *bundle.Set
	links *Links
	addr  string // federation listener
}

type sideOpts struct {
	advertise []string // put in tokens instead of the listener (a relay)
	gateways  []string
	svidPath  string // the side's own SPIFFE ID path; default /ns/causeway/sa/control
	stateFile string
}

func gatewayID(td spiffeid.TrustDomain) spiffeid.ID {
	return spiffeid.RequireFromPath(td, "/ns/causeway-system/sa/causeway-gateway")
}

func newSide(t *testing.T, name string, o sideOpts) *side {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(name + ".causeway.local")
	return newSideWithCA(t, name, identitytest.NewCA(t, td, nil), o)
}

// newSideWithCA starts a side on an existing CA: a restarted control plane.
func newSideWithCA(t *testing.T, name string, c *ca.CA, o sideOpts) *side {
	t.Helper()
	td := c.TrustDomain()
	svid, err := c.NewSVIDSource(spiffeid.RequireFromPath(td, cmp.Or(o.svidPath, "/ns/causeway/sa/control")), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := &side{name: name, td: td, ca: c, set: bundle.NewSet()}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = lis.Addr().String()
	if o.advertise == nil {
		// Named up front: Serve records the listener only once its
		// goroutine runs, and a test may Generate before that.
		o.advertise = []string{s.addr}
	}
	s.links, err = New(Options{Cluster: name, TrustDomain: td, SVID: svid, Bundle: c, Federated: s.set,
		Advertise: o.advertise, GatewayAddrs: o.gateways, GatewayID: gatewayID(td), StateFile: o.stateFile,
		Heartbeat: heartbeat, Timeout: timeout, ProbeInterval: probeIvl, ProbeTimeout: time.Second,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.links.Serve(lis); err != nil {
			t.Errorf("%s: Serve: %v", name, err)
		}
	})
	wg.Go(func() { _ = s.links.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		s.links.Close()
		wg.Wait()
	})
	return s
}

// link2 links b to a with a fresh token of a's.
func link2(t *testing.T, a, b *side) {
	t.Helper()
	tok, err := a.links.Generate(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.links.Apply(ctx, tok); err != nil {
		t.Fatalf("%s applies %s's token: %v", b.name, a.name, err)
	}
}

// eventually polls cond until it holds and returns how long that took.
func eventually(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("after %s: %s", waitLimit, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func importOf(s *side, key spec.Key) *spec.Service {
	in := s.links.Imports()
	for i := range in.Services {
		if in.Services[i].Key == key {
			return &in.Services[i]
		}
	}
	return nil
}

func linkOf(s *side, cluster string) *spec.Link {
	for _, l := range s.links.Imports().Links {
		if l.Cluster == cluster {
			return &l
		}
	}
	return nil
}

// statusOf returns s's status of its link to cluster.
func statusOf(t *testing.T, s *side, cluster string) Status {
	t.Helper()
	for _, st := range s.links.List() {
		if st.Cluster == cluster {
			return st
		}
	}
	t.Fatalf("%s has no link to %s", s.name, cluster)
	return Status{}
}

// exportSnap is a local snapshot of side s exporting the named services
// (ns "shop") on port 8080, each with identity ns/shop/sa/<name>.
func exportSnap(s *side, names ...string) *spec.Snapshot {
	in := spec.Input{TrustDomain: s.td.Name()}
	for _, n := range names {
		in.Services = append(in.Services, spec.Service{
			Key:        spec.Key{Namespace: "shop", Name: n},
			Ports:      []spec.Port{{Name: "http", Port: 8080, Protocol: spec.ProtocolHTTP}},
			Identities: []spiffeid.ID{spiffeid.RequireFromPath(s.td, "/ns/shop/sa/"+n)},
			Endpoints:  []spec.Endpoint{{Addr: "127.0.0.1", Port: 15006, Ready: true}},
			Export:     true,
		})
	}
	// One service that is not exported must never leave the cluster.
	in.Services = append(in.Services, spec.Service{Key: spec.Key{Namespace: "shop", Name: "internal"},
		Ports: []spec.Port{{Port: 9090, Protocol: spec.ProtocolTCP}}})
	snap, diags := spec.Build(in, spec.BuildOptions{})
	if diags.HasErrors() {
		panic(fmt.Sprint(diags))
	}
	return snap
}

// gateway is a TLS server proving a side's gateway ID: what a probe
// handshakes with. Its listener exists before the side (whose options name
// it); serve starts answering with the side's CA.
type gateway struct {
	lis  net.Listener
	addr string
	wg   sync.WaitGroup
	once sync.Once
}

func listenGateway(t *testing.T) *gateway {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{lis: lis, addr: lis.Addr().String()}
	t.Cleanup(g.stop)
	return g
}

func (g *gateway) serve(t *testing.T, s *side) {
	t.Helper()
	svid, err := s.ca.NewSVIDSource(gatewayID(s.td), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlsconfig.TLSServerConfig(svid)
	g.wg.Go(func() {
		for {
			c, err := g.lis.Accept()
			if err != nil {
				return
			}
			g.wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				tc := tls.Server(c, cfg)
				_ = tc.Handshake()
				_, _ = io.Copy(io.Discard, tc)
			})
		}
	})
}

func (g *gateway) stop() {
	g.once.Do(func() { _ = g.lis.Close() })
	g.wg.Wait()
}

// relay forwards TCP to a target. cut closes every connection and holds
// new ones open without answering (a peer that went away); freeze keeps
// connections open but drops every byte in both directions (a dead network
// path, which only heartbeats can notice).
type relay struct {
	lis    net.Listener
	mu     sync.Mutex
	target string
	mode   relayMode
	conns  []net.Conn
	wg     sync.WaitGroup
}

type relayMode int

const (
	forward relayMode = iota
	cut
	freeze
)

func startRelay(t *testing.T) *relay {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{lis: lis}
	r.wg.Go(r.accept)
	t.Cleanup(func() {
		_ = lis.Close()
		r.set(cut)
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.lis.Addr().String() }

func (r *relay) setTarget(target string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = target
}

func (r *relay) accept() {
	for {
		c, err := r.lis.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		mode, target := r.mode, r.target
		r.mu.Unlock()
		if mode != forward {
			continue // held open, silent, until the next set
		}
		u, err := net.Dial("tcp", target)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, u)
		r.mu.Unlock()
		r.wg.Go(func() { r.pipe(u, c) })
		r.wg.Go(func() { r.pipe(c, u) })
	}
}

// pipe copies src to dst, dropping what it reads while frozen.
func (r *relay) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		frozen := r.mode == freeze
		r.mu.Unlock()
		if frozen {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// set switches mode; cut and forward close every connection so far (a
// frozen connection's stream is corrupt once bytes were dropped).
func (r *relay) set(m relayMode) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m != freeze {
		for _, c := range r.conns {
			_ = c.Close()
		}
		r.conns = nil
	}
	r.mode = m
}

// testLogger is quiet; set CAUSEWAY_TEST_LOG=1 to see the links' logs.
var testLogger = func() *slog.Logger {
	if os.Getenv("CAUSEWAY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return identitytest.Quiet
}()

func mustTrust(t *testing.T, tok Token) *x509bundle.Bundle {
	t.Helper()
	roots, err := parseRoots([]byte(tok.Bundle))
	if err != nil {
		t.Fatal(err)
	}
	return x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(tok.TrustDomain), roots)
}

// TestMain fails the package if a test leaves goroutines behind: diallers,
// sessions, readers and probes must all end with Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
