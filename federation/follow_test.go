package federation

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/identity/bundle"
	"github.com/causeway-mesh/causeway/identity/identitytest"
)

// TestBundleFollowerFile: a follower of west's state file (what `causeway
// identity serve --federation-state` runs) gets east's bundle after a link,
// keeps it through a damaged file, loses it on unlink, and never touches a
// bundle it did not put into its set.
func TestBundleFollowerFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "links.json")
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{stateFile: state})
	foreignTD := spiffeid.RequireTrustDomainFromString("foreign.example")
	foreign := identitytest.NewCA(t, foreignTD, nil).Bundle()
	set := bundle.NewSet(foreign)
	f := &BundleFollower{Store: FileStore{Path: state}, Set: set, Logger: testLogger}
	ctx := context.Background()

	has := func(td spiffeid.TrustDomain) *spiffebundle.Bundle {
		b, err := set.GetBundleForTrustDomain(td)
		if err != nil {
			return nil
		}
		return b
	}
	steps := []struct {
		name    string
		do      func(t *testing.T)
		wantErr string // Sync's error, if any
		east    bool   // east's bundle in the set afterwards
	}{
		{"no state file yet", func(*testing.T) {}, "", false},
		{"after link", func(t *testing.T) { link2(t, east, west) }, "", true},
		{"damaged file keeps the last bundles", func(t *testing.T) {
			if err := os.WriteFile(state+".good", mustRead(t, state), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(state, []byte(`{"links":[{"cluster":"east","trustDomain":"east.causeway.local","peerID":"spiffe://east.causeway.local/c","bundle":"junk"}]}`), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "links[0] (east): bundle", true},
		{"file restored", func(t *testing.T) {
			if err := os.Rename(state+".good", state); err != nil {
				t.Fatal(err)
			}
		}, "", true},
		{"after unlink", func(t *testing.T) {
			if err := west.links.Remove(ctx, "east"); err != nil {
				t.Fatal(err)
			}
		}, "", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			err := f.Sync(ctx)
			if (err == nil) != (s.wantErr == "") || (err != nil && (!strings.Contains(err.Error(), s.wantErr) || !strings.Contains(err.Error(), state))) {
				t.Fatalf("Sync: %v, want an error naming %s and %q", err, state, s.wantErr)
			}
			got := has(east.td)
			if (got != nil) != s.east {
				t.Fatalf("east's bundle in the set = %v, want %v", got != nil, s.east)
			}
			if got != nil && !got.X509Bundle().Equal(east.ca.Bundle().X509Bundle()) {
				t.Error("the followed bundle is not east's CA bundle")
			}
			if b := has(foreignTD); b == nil || !b.Equal(foreign) {
				t.Error("the follower touched a bundle it did not put there")
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBundleFollowerRun: Run picks up a link within a few intervals and
// stops with its context.
func TestBundleFollowerRun(t *testing.T) {
	state := filepath.Join(t.TempDir(), "links.json")
	east := newSide(t, "east", sideOpts{})
	west := newSide(t, "west", sideOpts{stateFile: state})
	set := bundle.NewSet()
	f := &BundleFollower{Store: FileStore{Path: state}, Set: set, Logger: testLogger}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, 20*time.Millisecond) }()
	updated := set.Updated()
	link2(t, east, west)
	start := time.Now()
	select {
	case <-updated:
		t.Logf("link -> bundle in the follower's set: %s (interval 20ms)", time.Since(start).Round(time.Millisecond))
	case <-time.After(waitLimit):
		t.Fatalf("no bundle within %s", waitLimit)
	}
	if _, err := set.GetBundleForTrustDomain(east.td); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}

// TestStoreOptions: StateFile and Store are exclusive.
func TestStoreOptions(t *testing.T) {
	east := newSide(t, "east", sideOpts{})
	opts := east.links.opts
	opts.StateFile = filepath.Join(t.TempDir(), "a.json")
	opts.Store = FileStore{Path: filepath.Join(t.TempDir(), "b.json")}
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Fatalf("New with StateFile and Store: %v, want an error", err)
	}
}
