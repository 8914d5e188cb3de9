package control_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	configv1 "github.com/causeway-mesh/causeway/api/config/v1"
	"github.com/causeway-mesh/causeway/control"
	. "github.com/causeway-mesh/causeway/control/controltest"
	"github.com/causeway-mesh/causeway/proxy/configsource"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// recorder is a configsource client with a recording Apply, standing in for
// a real proxy: what matters here is what reaches Apply.
type recorder struct {
	client *configsource.Client
	mu     sync.Mutex
	got    []string // versions offered to Apply, in order
	refuse func(*spec.NodeConfig) error
}

func (p *recorder) apply(cfg *spec.NodeConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, cfg.Version)
	if p.refuse != nil {
		return p.refuse(cfg)
	}
	return nil
}

func (p *recorder) offered() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// connect runs a client for node against addr until the test ends.
func connect(t *testing.T, addr string, node spec.Node, refuse func(*spec.NodeConfig) error) *recorder {
	t.Helper()
	p := &recorder{refuse: refuse}
	c, err := configsource.New(configsource.Options{Addr: addr, Node: node, Apply: p.apply, Logger: Quiet,
		Backoff: configsource.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	p.client = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// synced waits until node ACKed the config compiled for it from snap.
func synced(t *testing.T, srv *control.Server, node spec.Node, snap *spec.Snapshot) string {
	t.Helper()
	want := spec.Compile(snap, node).Version
	WaitFor(t, srv, node.ID+" ACKs "+want, func() bool {
		p, ok := srv.Proxy(node.ID)
		return ok && p.Connected && p.LastAckedVersion == want && p.SnapshotVersion == snap.Version
	})
	return want
}

func TestConnectAckAndPushOnlyToChangedNodes(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	v1 := Snapshot(t, Mesh(Web))
	srv.Publish(v1, nil)
	web := connect(t, addr, WebNode, nil)
	api := connect(t, addr, APINode, nil)
	webV1 := synced(t, srv, WebNode, v1)
	apiV1 := synced(t, srv, APINode, v1)

	// Another caller for api: only api's compiled config changes.
	v2 := Snapshot(t, Mesh(Web, DB))
	if !srv.Publish(v2, nil) {
		t.Fatal("Publish refused a valid snapshot")
	}
	apiV2 := synced(t, srv, APINode, v2)
	synced(t, srv, WebNode, v2) // web's stream has compiled v2, and skipped it

	cases := []struct {
		name       string
		node       spec.Node
		p          *recorder
		wantOffers []string
	}{
		{"web sees no push", WebNode, web, []string{webV1}},
		{"api gets the new policy", APINode, api, []string{apiV1, apiV2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.offered(); !slices.Equal(got, tc.wantOffers) {
				t.Errorf("Apply saw %v, want %v", got, tc.wantOffers)
			}
			st, _ := srv.Proxy(tc.node.ID)
			if st.Pushes != len(tc.wantOffers) {
				t.Errorf("sync state counts %d pushes, want %d", st.Pushes, len(tc.wantOffers))
			}
			if !st.InSync() || st.LastNackReason != "" {
				t.Errorf("sync state %+v: want in sync with no NACK", st)
			}
			if st.LastSentNonce == "" || st.ConnectedSince.IsZero() {
				t.Errorf("sync state %+v lacks nonce or connected-since", st)
			}
			if got := tc.p.client.Status().Version; got != tc.wantOffers[len(tc.wantOffers)-1] {
				t.Errorf("client runs %q, want %q", got, tc.wantOffers[len(tc.wantOffers)-1])
			}
		})
	}
}

func TestNackKeepsPreviousVersion(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	v1 := Snapshot(t, Mesh(Web))
	srv.Publish(v1, nil)
	refusal := errors.New("inbound policy shop/api-callers: 2 sources is more than this proxy allows")
	api := connect(t, addr, APINode, func(cfg *spec.NodeConfig) error {
		if len(cfg.Inbound.Policies) > 0 && len(cfg.Inbound.Policies[0].Sources) > 1 {
			return refusal
		}
		return nil
	})
	good := synced(t, srv, APINode, v1)

	v2 := Snapshot(t, Mesh(Web, DB))
	srv.Publish(v2, nil)
	bad := spec.Compile(v2, APINode).Version
	WaitFor(t, srv, "api NACKs "+bad, func() bool {
		p, _ := srv.Proxy(APINode.ID)
		return p.LastNackVersion == bad
	})
	st, _ := srv.Proxy(APINode.ID)
	checks := []struct {
		name      string
		got, want string
	}{
		{"acked version stays", st.LastAckedVersion, good},
		{"nack reason", st.LastNackReason, refusal.Error()},
		{"last sent", st.LastSentVersion, bad},
		{"client keeps running", api.client.Status().Version, good},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %q, want %q", c.got, c.want)
			}
		})
	}
	if st.InSync() {
		t.Error("a proxy that NACKed the last version reports in sync")
	}

	// A fix upstream (back to one caller) is a new version: it is sent and
	// ACKed, and the NACK stays on record.
	v3 := Snapshot(t, Mesh(DB))
	srv.Publish(v3, nil)
	synced(t, srv, APINode, v3)
	if st, _ := srv.Proxy(APINode.ID); st.LastNackVersion != bad {
		t.Errorf("the NACK record was lost: %+v", st)
	}
}

func TestInvalidSnapshotReachesNoOne(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	v1 := Snapshot(t, Mesh(Web))
	srv.Publish(v1, nil)
	web := connect(t, addr, WebNode, nil)
	api := connect(t, addr, APINode, nil)
	synced(t, srv, WebNode, v1)
	synced(t, srv, APINode, v1)

	in := Mesh(Web, DB)
	in.Services[0].Ports[0].Port = 0 // out of range: an error diagnostic
	bad, diags := spec.Build(in, spec.BuildOptions{})
	if !diags.HasErrors() {
		t.Fatal("test input should not build cleanly")
	}
	if srv.Publish(bad, diags) {
		t.Fatal("Publish accepted a snapshot with errors")
	}
	st := srv.Status()
	if !st.Rejected || st.Version != v1.Version || len(st.Diagnostics.Errors()) == 0 {
		t.Fatalf("status after a bad update = %+v; want rejected, still serving %s, with the errors", st, v1.Version)
	}
	if srv.Snapshot() != v1 {
		t.Fatal("the bad snapshot replaced the last good one")
	}
	// A good update afterwards is the next thing each proxy sees: nothing
	// from the bad one was queued.
	v3 := Snapshot(t, Mesh(DB))
	srv.Publish(v3, nil)
	synced(t, srv, APINode, v3)
	synced(t, srv, WebNode, v3)
	for _, tc := range []struct {
		name string
		p    *recorder
		want int
	}{{"web", web, 1}, {"api", api, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.offered(); len(got) != tc.want {
				t.Errorf("Apply saw %v, want %d configs", got, tc.want)
			}
		})
	}
	if srv.Status().Rejected {
		t.Error("status still rejected after a good update")
	}
}

func TestClientKeepsConfigAndResyncsAfterRestart(t *testing.T) {
	cases := []struct {
		name string
		// next is the mesh the restarted control plane serves.
		next      spec.Input
		wantPush  bool
		wantTotal int
	}{
		{"same config: no push, proxy reported in sync", Mesh(Web), false, 1},
		{"new config: pushed and acked", Mesh(Web, DB), true, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv1, addr := Start(t, "", control.Options{})
			v1 := Snapshot(t, Mesh(Web))
			srv1.Publish(v1, nil)
			api := connect(t, addr, APINode, nil)
			first := synced(t, srv1, APINode, v1)

			Stop(t, srv1)
			Eventually(t, "client notices the control plane is gone", func() bool {
				s := api.client.Status()
				return !s.Connected && s.Reconnects > 0
			})
			if got := api.client.Status().Version; got != first {
				t.Fatalf("while away the client runs %q, want the last good %q", got, first)
			}

			srv2, _ := Start(t, addr, control.Options{})
			next := Snapshot(t, tc.next)
			srv2.Publish(next, nil)
			want := synced(t, srv2, APINode, next)
			st, _ := srv2.Proxy(APINode.ID)
			if pushed := st.Pushes > 0; pushed != tc.wantPush {
				t.Errorf("pushes after reconnect = %d, want push=%v", st.Pushes, tc.wantPush)
			}
			if got := api.offered(); len(got) != tc.wantTotal || got[len(got)-1] != want {
				t.Errorf("Apply saw %v, want %d configs ending in %s", got, tc.wantTotal, want)
			}
		})
	}
}

func TestStopEndsStreamsPromptly(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	v1 := Snapshot(t, Mesh(Web))
	srv.Publish(v1, nil)
	connect(t, addr, WebNode, nil)
	synced(t, srv, WebNode, v1)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Stop(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Stop needed the hard stop after %v: a stream did not end", time.Since(start))
	}
	if st, _ := srv.Proxy(WebNode.ID); st.Connected {
		t.Error("proxy still connected after Stop")
	}
}

// TestDisconnectedProxiesAreForgotten: sync state outlives a stream (the
// REST API shows recently gone proxies) but not ForgetAfter.
func TestDisconnectedProxiesAreForgotten(t *testing.T) {
	var mu sync.Mutex
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	srv, addr := Start(t, "", control.Options{Now: now, ForgetAfter: time.Minute})
	snap := Snapshot(t, Mesh(Web))
	srv.Publish(snap, nil)

	session := func(node spec.Node) {
		c, err := configsource.New(configsource.Options{Addr: addr, Node: node, Logger: Quiet, Apply: func(*spec.NodeConfig) error { return nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(ctx) }()
		synced(t, srv, node, snap)
		cancel()
		<-done
		WaitFor(t, srv, node.ID+" disconnected", func() bool { p, _ := srv.Proxy(node.ID); return !p.Connected })
	}
	session(WebNode)
	advance(2 * time.Minute)
	session(APINode) // its disconnect prunes what is older than a minute

	cases := []struct {
		id   string
		kept bool
	}{{WebNode.ID, false}, {APINode.ID, true}}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			if _, ok := srv.Proxy(tc.id); ok != tc.kept {
				t.Errorf("sync state kept = %v, want %v", ok, tc.kept)
			}
		})
	}
}

// TestStopDoesNotWaitForSilentPeers: a peer that opens a stream and never
// says who it is does not hold up a graceful stop.
func TestStopDoesNotWaitForSilentPeers(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := configv1.NewConfigServiceClient(conn).StreamConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing on the server side is observable before a hello, so give the
	// stream a moment to reach the handler.
	time.Sleep(100 * time.Millisecond)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	srv.Stop(stopCtx)
	if stopCtx.Err() != nil {
		t.Fatal("Stop fell back to the hard stop: the silent stream held it up")
	}
	if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("silent peer's stream ended with %v, want Unavailable", err)
	}
}

func TestHealthService(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", configv1.ConfigService_ServiceDesc.ServiceName} {
		t.Run("service "+svc, func(t *testing.T) {
			resp, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
			if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check(%q) = %v, %v; want SERVING", svc, resp, err)
			}
		})
	}
	// A watcher sees NOT_SERVING when the control plane starts to stop.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: configv1.ConfigService_ServiceDesc.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch status %v, %v", r, err)
	}
	go Stop(t, srv)
	if r, err := w.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("status on stop %v, %v; want NOT_SERVING", r, err)
	}
}

// TestNodeBacksServicesByAddress: a node that reports its pod IP and names
// no Service gets, over the stream, inbound config for every Service with
// an endpoint at that IP proving its identity, including one created after
// it connected, and loses it when that endpoint goes.
func TestNodeBacksServicesByAddress(t *testing.T) {
	srv, addr := Start(t, "", control.Options{})
	podIP := "10.44.0.7"
	withEndpoint := func(extra ...spec.Service) *spec.Snapshot {
		in := Mesh(Web)
		for i := range in.Services {
			if in.Services[i].Key == K("shop/api") {
				in.Services[i].Endpoints = []spec.Endpoint{{Addr: podIP, Port: 8080, Ready: true, Identity: API}}
			}
		}
		in.Services = append(in.Services, extra...)
		return Snapshot(t, in)
	}
	node := spec.Node{ID: "api-pod", Identity: API, Addresses: []string{podIP}}
	v1 := withEndpoint()
	srv.Publish(v1, nil)
	p := connect(t, addr, node, nil)
	synced(t, srv, node, v1)
	// A Service created later that selects the same pod.
	admin := spec.Service{Key: K("shop/api-admin"), Ports: []spec.Port{{Port: 9090, Protocol: spec.ProtocolHTTP}},
		Identities: []spiffeid.ID{API}, Endpoints: []spec.Endpoint{{Addr: podIP, Port: 9090, Ready: true, Identity: API}}}
	v2 := withEndpoint(admin)
	srv.Publish(v2, nil)
	synced(t, srv, node, v2)
	// The pod leaves shop/api (its endpoint moves elsewhere).
	in := Mesh(Web)
	in.Services = append(in.Services, admin)
	v3 := Snapshot(t, in)
	srv.Publish(v3, nil)
	synced(t, srv, node, v3)

	steps := []struct {
		name string
		snap *spec.Snapshot
		want []spec.Key
	}{
		{"endpoint at the pod IP", v1, []spec.Key{K("shop/api")}},
		{"a Service created later", v2, []spec.Key{K("shop/api"), K("shop/api-admin")}},
		{"endpoint gone", v3, []spec.Key{K("shop/api-admin")}},
	}
	offered := p.offered()
	if len(offered) != len(steps) {
		t.Fatalf("Apply saw %d configs, want %d", len(offered), len(steps))
	}
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			cfg := spec.Compile(st.snap, node)
			if offered[i] != cfg.Version {
				t.Fatalf("config %d: got version %s, want %s", i, offered[i], cfg.Version)
			}
			var got []spec.Key
			for _, s := range cfg.Inbound.Services {
				got = append(got, s.Key)
			}
			if !slices.Equal(got, st.want) {
				t.Errorf("inbound services %v, want %v", got, st.want)
			}
		})
	}
}
