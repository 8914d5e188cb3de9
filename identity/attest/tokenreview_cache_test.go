package attest_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/identity/attest"
)

// fakeClock moves the attestor's cache through time without sleeping; the
// apiserver still judges tokens by the real clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.now }
func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

type cacheStep struct {
	name      string
	do        func(t *testing.T) (attest.Caller, bool) // caller, and whether it must be accepted
	wantStats attest.TokenReviewStats
}

func runCacheSteps(t *testing.T, c *cluster, a *attest.TokenReview, steps []cacheStep) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			caller, accept := st.do(t)
			_, err := a.Attest(c.ctx, caller)
			switch {
			case accept && err != nil:
				t.Fatalf("refused: %v", err)
			case !accept && !errors.Is(err, attest.ErrNoIdentity):
				t.Fatalf("Attest err = %v, want ErrNoIdentity", err)
			}
			if got := a.Stats(); got != st.wantStats {
				t.Errorf("stats %+v, want %+v", got, st.wantStats)
			}
		})
	}
}

// TestTokenReviewCache: a positive review is reused for CacheTTL (even if the
// token is revoked meanwhile: that is the price of the cache, so CacheTTL is
// short), then asked again; refusals are never cached.
func TestTokenReviewCache(t *testing.T) {
	c := newCluster(t)
	c.serviceAccount("web")
	web := c.pod("web-0", "web")
	doomed := c.pod("web-1", "web")
	clock := &fakeClock{now: time.Now()}
	const ttl = 10 * time.Second
	a := c.attestor(func(cfg *attest.TokenReviewConfig) { cfg.CacheTTL = ttl; cfg.Now = clock.Now })
	tok, other := c.token("web", "causeway", doomed), c.token("web", "causeway", web)
	runCacheSteps(t, c, a, []cacheStep{
		{"first call is a review", func(*testing.T) (attest.Caller, bool) { return withToken(tok), true }, attest.TokenReviewStats{Reviews: 1}},
		{"second call is a cache hit", func(*testing.T) (attest.Caller, bool) { return withToken(tok), true }, attest.TokenReviewStats{Reviews: 1, CacheHits: 1}},
		{"another token is a review", func(*testing.T) (attest.Caller, bool) { return withToken(other), true }, attest.TokenReviewStats{Reviews: 2, CacheHits: 1}},
		{"revoked but cached: still accepted", func(t *testing.T) (attest.Caller, bool) {
			if err := c.kc.CoreV1().Pods(c.ns).Delete(c.ctx, doomed.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.waitRevoked(tok)
			clock.Set(clock.Now().Add(ttl - time.Millisecond))
			return withToken(tok), true
		}, attest.TokenReviewStats{Reviews: 2, CacheHits: 2}},
		{"after CacheTTL: reviewed and refused", func(*testing.T) (attest.Caller, bool) {
			clock.Set(clock.Now().Add(time.Millisecond))
			return withToken(tok), false
		}, attest.TokenReviewStats{Reviews: 3, CacheHits: 2}},
		{"refusals are not cached", func(*testing.T) (attest.Caller, bool) { return withToken(tok), false }, attest.TokenReviewStats{Reviews: 4, CacheHits: 2}},
	})
}

// TestTokenReviewCacheBoundedByExpiry: with a CacheTTL longer than the
// token's life, the cache entry still ends at the token's exp.
func TestTokenReviewCacheBoundedByExpiry(t *testing.T) {
	c := newCluster(t)
	c.serviceAccount("web")
	tok := c.token("web", "causeway", c.pod("web-0", "web"))
	clock := &fakeClock{now: time.Now()}
	a := c.attestor(func(cfg *attest.TokenReviewConfig) { cfg.CacheTTL = time.Hour; cfg.Now = clock.Now })
	r, err := a.Review(c.ctx, tok) // a review, now cached
	if err != nil {
		t.Fatal(err)
	}
	if r.Expires.IsZero() {
		t.Fatal("no exp read from the token")
	}
	runCacheSteps(t, c, a, []cacheStep{
		{"just before exp: cache hit", func(*testing.T) (attest.Caller, bool) {
			clock.Set(r.Expires.Add(-time.Second))
			return withToken(tok), true
		}, attest.TokenReviewStats{Reviews: 1, CacheHits: 1}},
		// The apiserver's clock is the real one, so it still accepts.
		{"at exp: a review", func(*testing.T) (attest.Caller, bool) {
			clock.Set(r.Expires)
			return withToken(tok), true
		}, attest.TokenReviewStats{Reviews: 2, CacheHits: 1}},
		{"past exp: never cached again", func(*testing.T) (attest.Caller, bool) { return withToken(tok), true }, attest.TokenReviewStats{Reviews: 3, CacheHits: 1}},
	})
}

// TestTokenReviewConcurrentCalls: a workload opens several Workload API
// streams at once with the same token; they cost one TokenReview, the rest
// wait for it or hit the cache. Refusals are shared while in flight only.
func TestTokenReviewConcurrentCalls(t *testing.T) {
	c := newCluster(t)
	c.serviceAccount("web")
	good := c.token("web", "causeway", c.pod("web-0", "web"))
	const callers = 20
	tests := []struct {
		name     string
		token    string
		accepted bool
		check    func(s attest.TokenReviewStats) bool
	}{
		{"good token: one review", good, true, func(s attest.TokenReviewStats) bool {
			return s.Reviews == 1 && s.Shared+s.CacheHits == callers-1
		}},
		{"garbage: each refusal answers only the calls waiting for it", "garbage", false, func(s attest.TokenReviewStats) bool {
			return s.Reviews >= 1 && s.CacheHits == 0 && s.Reviews+s.Shared == callers
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := c.attestor(nil)
			start := make(chan struct{})
			errs := make(chan error, callers)
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					<-start
					_, err := a.Attest(c.ctx, withToken(tt.token))
					errs <- err
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if tt.accepted != (err == nil) || (!tt.accepted && !errors.Is(err, attest.ErrNoIdentity)) {
					t.Errorf("Attest err = %v; accepted wanted: %v", err, tt.accepted)
				}
			}
			s := a.Stats()
			t.Logf("%d concurrent calls: %+v", callers, s)
			if !tt.check(s) {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// BenchmarkTokenReview measures one attestation against the real apiserver:
// a TokenReview of a token it has not seen (signature check and lookups of
// the ServiceAccount and Pod), of a token it has seen (kube-apiserver keeps
// accepted tokens 10s), and one answered from the attestor's own cache.
func BenchmarkTokenReview(b *testing.B) {
	c := newCluster(b)
	c.serviceAccount("web")
	pod := c.pod("web-0", "web")
	tok := c.token("web", "causeway", pod)
	b.Run("fresh-token", func(b *testing.B) {
		a := c.attestor(func(cfg *attest.TokenReviewConfig) { cfg.CacheTTL = -1 })
		b.StopTimer()
		callers := make([]attest.Caller, b.N)
		for i := range callers {
			callers[i] = withToken(c.token("web", "causeway", pod))
		}
		b.StartTimer()
		for i := range b.N {
			if _, err := a.Attest(c.ctx, callers[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		ttl  time.Duration
	}{{"review", -1}, {"cached", time.Minute}} {
		b.Run(bc.name, func(b *testing.B) {
			a := c.attestor(func(cfg *attest.TokenReviewConfig) { cfg.CacheTTL = bc.ttl })
			caller := withToken(tok)
			for b.Loop() {
				if _, err := a.Attest(c.ctx, caller); err != nil {
					b.Fatal(err)
				}
			}
			s := a.Stats()
			b.ReportMetric(float64(s.Reviews)/float64(b.N), "reviews/op")
		})
	}
}
