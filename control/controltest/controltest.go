// Package controltest starts control planes and builds small meshes for
// tests of control/ and of the proxies' stream client. It is imported only
// from _test.go files.
package controltest

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/spec"
	. "github.com/causeway-mesh/causeway/spec/spectest"
)

// Quiet drops log output that would only be noise in test runs.
var Quiet = slog.New(slog.DiscardHandler)

// Web, API and DB are the workloads of Mesh; WebNode and APINode are their
// sidecars.
var (
	Web     = ID("shop", "web")
	API     = ID("shop", "api")
	DB      = ID("shop", "db")
	WebNode = spec.Node{ID: "web-0", Identity: Web, Services: []spec.Key{K("shop/web")}}
	APINode = spec.Node{ID: "api-0", Identity: API, Services: []spec.Key{K("shop/api")}}
)

// Mesh is three HTTP services; apiCallers may call api (one AccessPolicy
// whose destination is api). Changing apiCallers changes only APINode's
// compiled config: policies compile into their destination's node alone.
func Mesh(apiCallers ...spiffeid.ID) spec.Input {
	web := HTTPService("shop/web", 8080, "127.0.0.1:18080")
	web.Identities = []spiffeid.ID{Web}
	api := HTTPService("shop/api", 8080, "127.0.0.1:18081")
	api.Identities = []spiffeid.ID{API}
	db := HTTPService("shop/db", 5432, "127.0.0.1:15432")
	db.Identities = []spiffeid.ID{DB}
	in := spec.Input{
		TrustDomain: TrustDomain,
		Services:    []spec.Service{web, api, db},
		Routes:      []spec.Route{{Key: K("shop/all"), Kind: spec.RouteHTTP, Matches: []spec.Match{{Name: "all", PathRegex: "/"}}}},
	}
	if len(apiCallers) > 0 {
		in.Policies = []spec.AccessPolicy{{Key: K("shop/api-callers"), Destination: API, Sources: apiCallers,
			Rules: []spec.AccessRule{{Route: spec.RouteRef{Kind: spec.RouteHTTP, Key: K("shop/all")}}}}}
	}
	return in
}

// Snapshot builds in and fails the test on an error diagnostic.
func Snapshot(t testing.TB, in spec.Input) *spec.Snapshot {
	t.Helper()
	s, diags := spec.Build(in, spec.BuildOptions{})
	if err := diags.Err(); err != nil {
		t.Fatalf("controltest: build: %v", err)
	}
	return s
}

// Start serves a control plane on a fresh loopback port (or on addr, to
// restart one where a previous one was). It is stopped when the test ends;
// stopping it earlier is fine.
func Start(t testing.TB, addr string, opts control.Options) (*control.Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = Quiet
	}
	var lis net.Listener
	if addr == "" {
		lis = listenFresh(t)
	} else {
		lis = listenAgain(t, addr)
	}
	srv := control.New(opts)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		Stop(t, srv)
		if err := <-done; err != nil {
			t.Errorf("controltest: serve: %v", err)
		}
	})
	return srv, lis.Addr().String()
}

// listenFresh binds a port from below the kernel's ephemeral range
// (loopback.FreePorts). Tests stop a control plane and start another on its
// address, leaving the port unbound in between; a port from ":0" is one the
// kernel may meanwhile hand to any outgoing connection of the tests running
// in parallel, and then the restart cannot bind it. Below the range only
// another explicit chooser could take it.
func listenFresh(t testing.TB) net.Listener {
	t.Helper()
	var err error
	for range 20 {
		var ports []int
		if ports, err = loopback.FreePorts(1); err != nil {
			break
		}
		var lis net.Listener
		// Another chooser may have taken the port since FreePorts looked.
		if lis, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))); err == nil {
			return lis
		}
	}
	t.Fatalf("controltest: listen on a fresh loopback port: %v", err)
	return nil
}

// listenAgain binds addr, where a stopped control plane was.
func listenAgain(t testing.TB, addr string) net.Listener {
	t.Helper()
	var lis net.Listener
	var err error
	// A port just freed by a stopped control plane can take a moment to be
	// bindable again.
	for deadline := time.Now().Add(30 * time.Second); ; {
		lis, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("controltest: listen %s: %v", addr, err)
	}
	return lis
}

// Stop stops srv, giving streams 5s to end.
func Stop(t testing.TB, srv *control.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Stop(ctx)
}

// WaitFor waits until cond holds for srv's state, re-checking at each change
// (Server.Changed), and fails the test after 30s with what: generous, since
// on a loaded machine running every package's tests a reconnect and resync
// can take seconds, and a met condition returns at once.
func WaitFor(t testing.TB, srv *control.Server, what string, cond func() bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		changed := srv.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("controltest: timed out waiting for %s", what)
		}
	}
}

// Eventually polls cond every 10ms for up to 30s, for state that has no
// change channel (a client's).
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("controltest: timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
