// Package identitytest starts Causeway's identity pieces for tests: a CA in a
// temp directory and a Workload API server on a short-lived unix socket.
// It is imported only from _test.go files.
package identitytest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/identity/workloadapi"
)

// Quiet is a logger that drops everything; pass it where output would only be noise.
var Quiet = slog.New(slog.DiscardHandler)

// NewCA returns a CA for td stored in a test temp directory. mod may adjust
// the options (TTLs, clock) before the CA is created.
func NewCA(t testing.TB, td spiffeid.TrustDomain, mod func(*ca.Options)) *ca.CA {
	t.Helper()
	o := ca.Options{TrustDomain: td, Store: ca.DirStore{Dir: t.TempDir()}, Logger: Quiet}
	if mod != nil {
		mod(&o)
	}
	c, err := ca.New(context.Background(), o)
	if err != nil {
		t.Fatalf("identitytest: CA %s: %v", td, err)
	}
	return c
}

// SocketDir returns a fresh directory with a short path: unix socket paths are
// limited to 108 bytes, and t.TempDir paths under long test names exceed it.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Self returns table entries mapping this test process's uid to uidIdentity
// and its gid to gidIdentity ("namespace/serviceAccount"); an empty one is
// left out.
func Self(t testing.TB, uidIdentity, gidIdentity string) []attest.Entry {
	t.Helper()
	var out []attest.Entry
	add := func(sel, ident string) {
		if ident == "" {
			return
		}
		e, err := attest.ParseEntry(sel + "=" + ident)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	add("uid:"+strconv.Itoa(os.Getuid()), uidIdentity)
	add("gid:"+strconv.Itoa(os.Getgid()), gidIdentity)
	return out
}

// Other returns an entry for a uid that is not this process's, so a table of
// only such entries makes the test process an unknown caller.
func Other(t testing.TB, identity string) attest.Entry {
	t.Helper()
	e, err := attest.ParseEntry("uid:" + strconv.Itoa(os.Getuid()+1) + "=" + identity)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// WorkloadAPI configures StartWorkloadAPI.
type WorkloadAPI struct {
	Entries   []attest.Entry
	Federated workloadapi.FederatedBundles
	SVIDTTL   time.Duration
}

// StartWorkloadAPI serves a Workload API for c with the given attestation
// table and returns its address in go-spiffe's form (unix:///path). The
// server is stopped when the test ends.
func StartWorkloadAPI(t testing.TB, c *ca.CA, w WorkloadAPI) string {
	t.Helper()
	tab, err := attest.NewTable(c.TrustDomain(), w.Entries)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := workloadapi.New(workloadapi.Config{CA: c, Attestor: tab, Federated: w.Federated, SVIDTTL: w.SVIDTTL, Logger: Quiet})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(SocketDir(t), "api.sock")
	l, err := workloadapi.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("identitytest: Workload API Serve: %v", err)
		}
	})
	return "unix://" + path
}
