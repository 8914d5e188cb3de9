package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// fakeClock lets rotation tests move past the overlap window without sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func newCA(t *testing.T, dir string, clock *fakeClock, mod func(*Options)) *CA {
	t.Helper()
	o := Options{TrustDomain: td, Store: DirStore{Dir: dir}, Logger: slog.New(slog.DiscardHandler)}
	if clock != nil {
		o.Now = clock.Now
	}
	if mod != nil {
		mod(&o)
	}
	c, err := New(context.Background(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestIssueX509SVID(t *testing.T) {
	t.Parallel()
	c := newCA(t, t.TempDir(), nil, nil)
	id := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	tests := []struct {
		name string
		ttl  time.Duration
		want time.Duration
	}{
		{"default 24h", 0, DefaultSVIDTTL},
		{"one hour", time.Hour, time.Hour},
		{"two minutes", 2 * time.Minute, 2 * time.Minute},
		{"three seconds", 3 * time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := time.Now()
			svid, err := c.IssueX509SVID(id, tt.ttl)
			if err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			gotID, _, err := x509svid.Verify(svid.Certificates, c)
			if err != nil {
				t.Fatalf("Verify against own bundle: %v", err)
			}
			if gotID != id {
				t.Errorf("verified ID = %s, want %s", gotID, id)
			}
			leaf := svid.Certificates[0]
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
				t.Errorf("URI SANs = %v, want exactly [%s]", leaf.URIs, id)
			}
			if len(leaf.DNSNames)+len(leaf.EmailAddresses)+len(leaf.IPAddresses) != 0 {
				t.Errorf("leaf has non-URI SANs: %v %v %v", leaf.DNSNames, leaf.EmailAddresses, leaf.IPAddresses)
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %b, want digitalSignature only", leaf.KeyUsage)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ExtKeyUsage = %v, want serverAuth+clientAuth", leaf.ExtKeyUsage)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Errorf("leaf basic constraints: IsCA=%v valid=%v", leaf.IsCA, leaf.BasicConstraintsValid)
			}
			if !keyUsageCritical(leaf) {
				t.Errorf("key usage extension is not critical (X509-SVID §4.3)")
			}
			// The CA read its clock somewhere between before and after, and
			// NotAfter is that plus the TTL cut to the second: measured from
			// before it can exceed the TTL when a second begins in between.
			if leaf.NotAfter.After(after.Add(tt.want)) || leaf.NotAfter.Before(before.Add(tt.want-5*time.Second)) {
				t.Errorf("NotAfter %s, want the issue time (%s to %s) + %s", leaf.NotAfter, before, after, tt.want)
			}
			inter := svid.Certificates[1]
			if len(svid.Certificates) != 2 || !inter.IsCA || !inter.MaxPathLenZero || inter.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("chain: want leaf + intermediate CA with pathlen 0, got %d certs", len(svid.Certificates))
			}
			if slices.ContainsFunc(c.Bundle().X509Authorities(), inter.Equal) {
				t.Errorf("intermediate is in the bundle; only roots belong there")
			}
		})
	}
}

func keyUsageCritical(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal([]int{2, 5, 29, 15}) {
			return e.Critical
		}
	}
	return false
}

func TestIssueRejects(t *testing.T) {
	t.Parallel()
	c := newCA(t, t.TempDir(), nil, nil)
	other := spiffeid.RequireTrustDomainFromString("other.test")
	tests := []struct {
		name string
		id   spiffeid.ID
	}{
		{"zero ID", spiffeid.ID{}},
		{"other trust domain", spiffeid.RequireFromPath(other, "/ns/a/sa/b")},
		{"trust domain ID without path", td.ID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.IssueX509SVID(tt.id, time.Minute); err == nil {
				t.Errorf("IssueX509SVID(%q) succeeded", tt.id)
			}
			if _, err := c.IssueJWTSVID(tt.id, []string{"aud"}, time.Minute); err == nil {
				t.Errorf("IssueJWTSVID(%q) succeeded", tt.id)
			}
		})
	}
}

func TestStorePersistsWith0600(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	c := newCA(t, dir, nil, nil)
	fi, err := os.Stat(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s mode = %#o, want 0600", stateFile, perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("dir mode = %#o, want 0700", perm)
	}
	if err := c.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := newCA(t, dir, nil, nil)
	if !again.Bundle().Equal(c.Bundle()) {
		t.Errorf("reloaded bundle differs from the saved one")
	}
	svid, err := again.IssueX509SVID(spiffeid.RequireFromPath(td, "/x"), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, c); err != nil {
		t.Errorf("SVID from reloaded CA does not verify against the original bundle: %v", err)
	}

	t.Run("refuses a group-readable file", func(t *testing.T) {
		if err := os.Chmod(filepath.Join(dir, stateFile), 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := New(context.Background(), Options{TrustDomain: td, Store: DirStore{Dir: dir}}); err == nil {
			t.Errorf("New accepted a 0640 key file")
		}
		if err := os.Chmod(filepath.Join(dir, stateFile), 0o600); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("refuses another trust domain", func(t *testing.T) {
		o := Options{TrustDomain: spiffeid.RequireTrustDomainFromString("other.test"), Store: DirStore{Dir: dir}}
		if _, err := New(context.Background(), o); err == nil {
			t.Errorf("New loaded cluster.local's state as other.test")
		}
	})
}

func TestRotationOverlap(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	const overlap = time.Hour
	c := newCA(t, t.TempDir(), clock, func(o *Options) { o.Overlap = overlap; o.SVIDTTL = 30 * time.Minute })
	ctx := context.Background()
	id := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	seq := func() uint64 { s, _ := c.Bundle().SequenceNumber(); return s }

	oldSVID, err := c.IssueX509SVID(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldJWT, err := c.IssueJWTSVID(id, []string{"shop"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	seq0 := seq()
	updated := c.Updated()
	if err := c.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-updated:
	default:
		t.Errorf("Updated channel not closed by Rotate")
	}
	if got := seq(); got != seq0+1 {
		t.Errorf("sequence after rotate = %d, want %d", got, seq0+1)
	}
	newSVID, err := c.IssueX509SVID(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if newSVID.Certificates[1].Equal(oldSVID.Certificates[1]) {
		t.Fatalf("SVID after rotation is still signed by the old intermediate")
	}

	// Verify at a moment when both SVIDs are within their own validity, so a
	// failure can only come from the bundle's contents.
	verifyAt := clock.Now().Add(time.Minute)
	check := func(t *testing.T, svid *x509svid.SVID, wantOK bool) {
		t.Helper()
		_, _, err := x509svid.Verify(svid.Certificates, c, x509svid.WithTime(verifyAt))
		if (err == nil) != wantOK {
			t.Errorf("Verify err = %v, want ok=%v", err, wantOK)
		}
	}
	clock.Add(overlap / 2)
	if _, err := c.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("during overlap both roots are trusted", func(t *testing.T) {
		if n := len(c.Bundle().X509Authorities()); n != 2 {
			t.Errorf("bundle has %d roots, want 2", n)
		}
		check(t, oldSVID, true)
		check(t, newSVID, true)
		// JWT expiry is checked against the real clock, on which oldJWT is
		// still fresh; what matters is that its key is still trusted.
		if _, err := jwtsvid.ParseAndValidate(oldJWT, c, []string{"shop"}); err != nil {
			t.Errorf("JWT-SVID from the old authority rejected during overlap: %v", err)
		}
	})
	clock.Add(overlap)
	next, err := c.Maintain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("after overlap only the new root", func(t *testing.T) {
		if n := len(c.Bundle().X509Authorities()); n != 1 {
			t.Errorf("bundle has %d roots, want 1", n)
		}
		check(t, oldSVID, false)
		renewed, err := c.IssueX509SVID(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := x509svid.Verify(renewed.Certificates, c, x509svid.WithTime(clock.Now())); err != nil {
			t.Errorf("renewed SVID: %v", err)
		}
		if _, err := jwtsvid.ParseAndValidate(oldJWT, c, []string{"shop"}); err == nil {
			t.Errorf("JWT-SVID from the retired authority still validates")
		}
		if got := seq(); got != seq0+2 {
			t.Errorf("sequence after retirement = %d, want %d", got, seq0+2)
		}
		if !next.After(clock.Now()) {
			t.Errorf("next maintenance %s is not in the future", next)
		}
	})
}

func TestJWTSVID(t *testing.T) {
	t.Parallel()
	c := newCA(t, t.TempDir(), nil, nil)
	id := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	tok, err := c.IssueJWTSVID(id, []string{"orders", "billing"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if h := parsed.Headers[0]; h.KeyID == "" || h.Algorithm != string(jose.ES256) || h.ExtraHeaders[jose.HeaderType] != "JWT" {
		t.Errorf("header = kid %q alg %q typ %v, want a kid, ES256, JWT", h.KeyID, h.Algorithm, h.ExtraHeaders[jose.HeaderType])
	}
	tests := []struct {
		name     string
		audience []string
		wantOK   bool
	}{
		{"first audience", []string{"orders"}, true},
		{"second audience", []string{"billing"}, true},
		{"audience not in token", []string{"payments"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svid, err := jwtsvid.ParseAndValidate(tok, c, tt.audience)
			if (err == nil) != tt.wantOK {
				t.Fatalf("ParseAndValidate err = %v, want ok=%v", err, tt.wantOK)
			}
			if err == nil && svid.ID != id {
				t.Errorf("subject = %s, want %s", svid.ID, id)
			}
		})
	}
	other := newCA(t, t.TempDir(), nil, nil)
	if _, err := jwtsvid.ParseAndValidate(tok, other, []string{"orders"}); err == nil {
		t.Errorf("token validated against another CA's keys")
	}
}

func TestSVIDSourceRenewsAtHalfLife(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	c := newCA(t, t.TempDir(), clock, nil)
	src, err := c.NewSVIDSource(spiffeid.RequireFromPath(td, "/ns/a/sa/b"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	first, renewAt, err := src.Current()
	if err != nil {
		t.Fatal(err)
	}
	// NotAfter has one-second resolution, hence the tolerance.
	if want := clock.Now().Add(30 * time.Minute); renewAt.After(want) || renewAt.Before(want.Add(-time.Second)) {
		t.Errorf("renewAt = %s, want issue time + 30m = %s", renewAt, want)
	}
	steps := []struct {
		name    string
		advance time.Duration
		rotate  bool
		wantNew bool
	}{
		{"before half-life the same SVID", 29 * time.Minute, false, false},
		{"past half-life a new SVID", 2 * time.Minute, false, true},
		{"unchanged right after renewal", time.Minute, false, false},
		{"CA rotation forces a new SVID", 0, true, true},
	}
	prev := first
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			clock.Add(st.advance)
			if st.rotate {
				if err := c.Rotate(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			got, err := src.GetX509SVID()
			if err != nil {
				t.Fatal(err)
			}
			if isNew := !got.Certificates[0].Equal(prev.Certificates[0]); isNew != st.wantNew {
				t.Errorf("new SVID = %v, want %v", isNew, st.wantNew)
			}
			prev = got
		})
	}
}

func TestLoadRejectsInconsistentState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*AuthorityState)
		errPart string
	}{
		{"intermediate swapped for root", func(a *AuthorityState) { a.IntermediateCert = a.RootCert }, "intermediateKey: does not match"},
		{"root key swapped", func(a *AuthorityState) { a.RootKey = a.JWTKey }, "rootKey: does not match"},
		{"missing kid", func(a *AuthorityState) { a.JWTKeyID = "" }, "jwtKeyID"},
		{"garbage certificate", func(a *AuthorityState) { a.RootCert = "nope" }, "rootCert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			newCA(t, dir, nil, nil)
			store := DirStore{Dir: dir}
			st, err := store.Load(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			tt.mutate(&st.Authorities[0])
			if err := store.Save(context.Background(), st); err != nil {
				t.Fatal(err)
			}
			_, err = New(context.Background(), Options{TrustDomain: td, Store: store, Logger: slog.New(slog.DiscardHandler)})
			if err == nil || !strings.Contains(err.Error(), tt.errPart) || !strings.Contains(err.Error(), "authorities[0]") {
				t.Fatalf("New = %v; want an error naming authorities[0] and %q", err, tt.errPart)
			}
		})
	}
}

func TestPrepareThenActivate(t *testing.T) {
	t.Parallel()
	c := newCA(t, t.TempDir(), nil, nil)
	ctx := context.Background()
	id := spiffeid.RequireFromPath(td, "/ns/shop/sa/web")
	seq := func() uint64 { s, _ := c.Bundle().SequenceNumber(); return s }
	before, err := c.IssueX509SVID(id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	seq0, active0 := seq(), c.ActiveID()
	if err := c.Activate(ctx); err == nil {
		t.Errorf("Activate with nothing prepared succeeded")
	}

	if err := c.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Prepare(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	prepared, err := c.IssueX509SVID(id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("prepared: trusted but not signing", func(t *testing.T) {
		if n := len(c.Bundle().X509Authorities()); n != 2 {
			t.Errorf("bundle has %d roots, want 2", n)
		}
		if got := seq(); got != seq0+1 {
			t.Errorf("sequence = %d, want %d", got, seq0+1)
		}
		if c.ActiveID() != active0 || !prepared.Certificates[1].Equal(before.Certificates[1]) {
			t.Errorf("signing switched to the prepared authority before Activate")
		}
	})
	if err := c.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := c.IssueX509SVID(id, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("activated: new signer, same bundle", func(t *testing.T) {
		if c.ActiveID() == active0 || after.Certificates[1].Equal(before.Certificates[1]) {
			t.Errorf("still signing with the old authority")
		}
		if got := seq(); got != seq0+1 {
			t.Errorf("sequence = %d, want %d: activation does not change the bundle", got, seq0+1)
		}
		for _, s := range []*x509svid.SVID{before, after} {
			if _, _, err := x509svid.Verify(s.Certificates, c); err != nil {
				t.Errorf("SVID does not verify: %v", err)
			}
		}
	})
	t.Run("state survives a restart", func(t *testing.T) {
		// Prepare again so the stored state has a prepared, an active and a retiring authority.
		if err := c.Prepare(ctx); err != nil {
			t.Fatal(err)
		}
		again, err := New(ctx, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.ActiveID() != c.ActiveID() || !again.Bundle().Equal(c.Bundle()) {
			t.Errorf("reloaded CA differs: active %s vs %s", again.ActiveID(), c.ActiveID())
		}
	})
}

// TestMaintainSchedule drives the automatic rotation with a fake clock:
// prepare at 1/2 of the root's life, activate at 5/6, retire after the overlap.
func TestMaintainSchedule(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Now()}
	const caTTL = 12 * time.Hour
	c := newCA(t, t.TempDir(), clock, func(o *Options) {
		o.CATTL, o.SVIDTTL, o.Overlap = caTTL, time.Hour, time.Hour
	})
	ctx := context.Background()
	first := c.ActiveID()
	steps := []struct {
		at          time.Duration // since creation
		roots       int
		activeFirst bool
	}{
		{time.Hour, 1, true},
		{6*time.Hour + time.Minute, 2, true},   // prepared
		{9 * time.Hour, 2, true},               // still only prepared
		{10*time.Hour + time.Minute, 2, false}, // activated, old retiring
		{11*time.Hour + 2*time.Minute, 1, false},
	}
	start := clock.Now()
	for _, st := range steps {
		t.Run(st.at.String(), func(t *testing.T) {
			clock.Add(start.Add(st.at).Sub(clock.Now()))
			next, err := c.Maintain(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(c.Bundle().X509Authorities()); n != st.roots {
				t.Errorf("bundle has %d roots, want %d", n, st.roots)
			}
			if (c.ActiveID() == first) != st.activeFirst {
				t.Errorf("first authority active = %v, want %v", c.ActiveID() == first, st.activeFirst)
			}
			if !next.After(clock.Now()) {
				t.Errorf("next run %s not after now %s", next, clock.Now())
			}
		})
	}
}

// flakyStore fails Save while fail is set, as a full disk or an apiserver
// outage would.
type flakyStore struct {
	DirStore
	fail bool
}

func (f *flakyStore) Save(ctx context.Context, s *State) error {
	if f.fail {
		return errors.New("disk full")
	}
	return f.DirStore.Save(ctx, s)
}

// TestFailedSaveChangesNothing: a rotation step that cannot be persisted is
// not published either, so memory, disk and what peers saw stay in step.
func TestFailedSaveChangesNothing(t *testing.T) {
	t.Parallel()
	store := &flakyStore{DirStore: DirStore{Dir: t.TempDir()}}
	c := newCA(t, "", nil, func(o *Options) { o.Store = store })
	ctx := context.Background()
	steps := []struct {
		name string
		do   func() error
	}{
		{"prepare", func() error { return c.Prepare(ctx) }},
		{"activate", func() error { return c.Activate(ctx) }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			bundle, active, updated := c.Bundle(), c.ActiveID(), c.Updated()
			store.fail = true
			if err := st.do(); err == nil {
				t.Fatalf("%s succeeded with a failing store", st.name)
			}
			if !c.Bundle().Equal(bundle) || c.ActiveID() != active {
				t.Errorf("failed %s changed the CA", st.name)
			}
			select {
			case <-updated:
				t.Errorf("failed %s woke watchers", st.name)
			default:
			}
			store.fail = false
			if err := st.do(); err != nil {
				t.Fatalf("retry: %v", err)
			}
			reloaded, err := New(ctx, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reloaded.Bundle().Equal(c.Bundle()) || reloaded.ActiveID() != c.ActiveID() {
				t.Errorf("stored state differs from memory after %s", st.name)
			}
		})
	}
}

func TestOptionsRejected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		mod  func(*Options)
	}{
		{"overlap shorter than SVID TTL", func(o *Options) { o.SVIDTTL, o.Overlap = 2*time.Hour, time.Hour }},
		{"SVID TTL below minimum", func(o *Options) { o.SVIDTTL = time.Millisecond }},
		{"CA TTL not above SVID TTL", func(o *Options) { o.SVIDTTL, o.CATTL = time.Hour, time.Hour }},
		{"no store", func(o *Options) { o.Store = nil }},
		{"unknown key type", func(o *Options) { o.KeyType = "rsa-2048" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := Options{TrustDomain: td, Store: DirStore{Dir: t.TempDir()}, Logger: slog.New(slog.DiscardHandler)}
			tt.mod(&o)
			if _, err := New(context.Background(), o); err == nil {
				t.Errorf("New accepted %s", tt.name)
			}
		})
	}
}
