package attest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedauthenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"

	"github.com/causeway-mesh/causeway/identity"
	"github.com/causeway-mesh/causeway/identity/attest/satoken"
)

// TokenMetadataKey is the gRPC metadata key in which a cluster-mode workload
// sends its projected ServiceAccount token with every Workload API call.
// TokenFile sends it; TokenReview reads it.
const TokenMetadataKey = satoken.MetadataKey

// DefaultAudience is the audience the projected token must be issued for
// (serviceAccountToken.audience in the pod's projected volume). A token for
// the apiserver itself, or for another service, is refused: whoever holds
// one of those must not be able to replay it here, nor we there.
const DefaultAudience = "causeway"

// Extra keys the apiserver sets on a ServiceAccount token bound to a Pod.
const (
	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

const (
	defaultCacheTTL        = 10 * time.Second
	defaultMaxCacheEntries = 10000
	// maxTokenBytes bounds what is sent on to the apiserver; projected
	// tokens are about 1 KiB.
	maxTokenBytes = 16 << 10
)

// TokenReviewConfig configures NewTokenReview. TrustDomain and Client are required.
type TokenReviewConfig struct {
	TrustDomain spiffeid.TrustDomain
	// Client is where TokenReviews are created, normally
	// kubernetes.Interface.AuthenticationV1() of the control plane, whose
	// ServiceAccount needs `create tokenreviews` (deploy/base/rbac.yaml).
	Client typedauthenticationv1.TokenReviewsGetter
	// Audiences the token must carry one of; default [DefaultAudience].
	Audiences []string
	// AllowUnboundTokens accepts tokens not bound to a Pod. By default a
	// token must name its Pod, as every kubelet-projected token does: then
	// deleting the Pod revokes it, and it cannot be a long-lived
	// Secret-based token copied out of the cluster.
	AllowUnboundTokens bool
	// CacheTTL is how long a positive review is reused (never past the
	// token's own exp); default 10s, negative disables the cache. Within it
	// a revoked token (deleted Pod or ServiceAccount) is still accepted.
	CacheTTL time.Duration
	// MaxCacheEntries bounds the cache; default 10000. Only tokens the
	// apiserver accepted are cached, so a caller cannot fill it with garbage.
	MaxCacheEntries int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// TokenReview is the cluster-mode Attestor: the caller presents a projected
// ServiceAccount token in TokenMetadataKey, the apiserver checks it
// (TokenReview: signature, expiry, audience, and that the ServiceAccount and
// bound Pod still exist with the same UIDs), and the caller gets
// spiffe://<trust domain>/ns/<namespace>/sa/<serviceAccount>. Any problem with
// the token is ErrNoIdentity; only a failure to reach or use the apiserver is
// another error (the server reports Unavailable, and the client retries).
// Safe for concurrent use; it owns no goroutines.
type TokenReview struct {
	cfg TokenReviewConfig

	mu       sync.Mutex
	cache    map[[sha256.Size]byte]cachedReview
	inflight map[[sha256.Size]byte]*pendingReview
	stats    TokenReviewStats
}

// TokenReviewStats counts what Attest did, for metrics and tests.
type TokenReviewStats struct {
	Reviews   uint64 // TokenReviews sent to the apiserver
	CacheHits uint64 // answered from the cache
	// Shared counts calls answered by a review another call of the same
	// token had in flight: a workload opens several streams at once.
	Shared uint64
}

// pendingReview is a TokenReview in flight; done is closed when r and err
// are set.
type pendingReview struct {
	done chan struct{}
	r    Review
	err  error
}

// Review is what the apiserver vouched for about one token.
type Review struct {
	ID             spiffeid.ID
	Namespace      string
	ServiceAccount string
	PodName        string // empty for a token not bound to a Pod
	PodUID         string
	// Expires is the token's exp claim; zero if it has none.
	Expires time.Time
}

type cachedReview struct {
	review  Review
	expires time.Time
}

// NewTokenReview checks cfg and builds the attestor.
func NewTokenReview(cfg TokenReviewConfig) (*TokenReview, error) {
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("TokenReview attestor: no trust domain")
	}
	if cfg.Client == nil {
		return nil, errors.New("TokenReview attestor: no Kubernetes client")
	}
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{DefaultAudience}
	}
	if slices.Contains(cfg.Audiences, "") {
		return nil, errors.New("TokenReview attestor: empty audience")
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = defaultCacheTTL
	}
	if cfg.MaxCacheEntries <= 0 {
		cfg.MaxCacheEntries = defaultMaxCacheEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &TokenReview{cfg: cfg, cache: map[[sha256.Size]byte]cachedReview{}, inflight: map[[sha256.Size]byte]*pendingReview{}}, nil
}

// Attest implements Attestor. Kernel peer credentials are not consulted: in
// cluster mode the socket is shared by every pod on the node and uids mean
// nothing across pods; the token is the proof.
func (a *TokenReview) Attest(ctx context.Context, c Caller) (spiffeid.ID, error) {
	vals := c.Metadata[TokenMetadataKey]
	switch {
	case len(vals) == 0:
		return spiffeid.ID{}, fmt.Errorf("%w: no %s metadata (pid %d)", ErrNoIdentity, TokenMetadataKey, c.PID)
	case len(vals) > 1:
		return spiffeid.ID{}, fmt.Errorf("%w: %d values of %s metadata, want one (pid %d)", ErrNoIdentity, len(vals), TokenMetadataKey, c.PID)
	}
	r, err := a.Review(ctx, vals[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w (pid %d)", err, c.PID)
	}
	return r.ID, nil
}

// Review checks one token, from the cache if it was accepted recently. Its
// errors never contain the token.
func (a *TokenReview) Review(ctx context.Context, token string) (Review, error) {
	token = strings.TrimSpace(token)
	if token == "" {
		return Review{}, fmt.Errorf("%w: empty %s", ErrNoIdentity, TokenMetadataKey)
	}
	if len(token) > maxTokenBytes {
		return Review{}, fmt.Errorf("%w: %s of %d bytes exceeds %d", ErrNoIdentity, TokenMetadataKey, len(token), maxTokenBytes)
	}
	key := sha256.Sum256([]byte(token))
	now := a.cfg.Now()
	a.mu.Lock()
	if e, ok := a.cache[key]; ok {
		if now.Before(e.expires) {
			a.stats.CacheHits++
			a.mu.Unlock()
			return e.review, nil
		}
		delete(a.cache, key)
	}
	if p, ok := a.inflight[key]; ok {
		a.stats.Shared++
		a.mu.Unlock()
		select {
		case <-p.done:
		case <-ctx.Done():
			return Review{}, fmt.Errorf("TokenReview: %w", ctx.Err())
		}
		// The caller whose review it was may have given up; that says
		// nothing about the token, so ask again for this one.
		if !errors.Is(p.err, context.Canceled) && !errors.Is(p.err, context.DeadlineExceeded) {
			return p.r, p.err
		}
		return a.Review(ctx, token)
	}
	p := &pendingReview{done: make(chan struct{})}
	a.inflight[key] = p
	a.stats.Reviews++
	a.mu.Unlock()

	p.r, p.err = a.review(ctx, token)
	if p.err == nil {
		a.remember(key, p.r, now)
	}
	a.mu.Lock()
	delete(a.inflight, key)
	a.mu.Unlock()
	close(p.done)
	return p.r, p.err
}

// review asks the apiserver.
func (a *TokenReview) review(ctx context.Context, token string) (Review, error) {
	tr, err := a.cfg.Client.TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.cfg.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return Review{}, fmt.Errorf("TokenReview: %w", err)
	}
	st := tr.Status
	if !st.Authenticated {
		reason := st.Error
		if reason == "" {
			reason = "not authenticated"
		}
		return Review{}, fmt.Errorf("%w: TokenReview refused the token: %s", ErrNoIdentity, reason)
	}
	// An authenticator that ignores audiences can say authenticated without
	// them; the intersection it reports is what counts (TokenReviewStatus).
	if !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.cfg.Audiences, aud) }) {
		return Review{}, fmt.Errorf("%w: token audiences %q include none of %q", ErrNoIdentity, st.Audiences, a.cfg.Audiences)
	}
	ns, sa, ok := serviceAccountUser(st.User.Username)
	if !ok {
		return Review{}, fmt.Errorf("%w: user %q is not a ServiceAccount", ErrNoIdentity, st.User.Username)
	}
	id, err := identity.WorkloadID(a.cfg.TrustDomain, ns, sa)
	if err != nil {
		return Review{}, fmt.Errorf("%w: user %q: %v", ErrNoIdentity, st.User.Username, err)
	}
	r := Review{ID: id, Namespace: ns, ServiceAccount: sa, Expires: tokenExpiry(token)}
	r.PodName, _ = single(st.User.Extra[extraPodName])
	r.PodUID, _ = single(st.User.Extra[extraPodUID])
	if (r.PodName == "" || r.PodUID == "") && !a.cfg.AllowUnboundTokens {
		return Review{}, fmt.Errorf("%w: token of %s/%s is not bound to a Pod (use a projected serviceAccountToken volume)", ErrNoIdentity, ns, sa)
	}
	return r, nil
}

// remember caches r until the earlier of now+CacheTTL and the token's exp.
func (a *TokenReview) remember(key [sha256.Size]byte, r Review, now time.Time) {
	if a.cfg.CacheTTL < 0 {
		return
	}
	until := now.Add(a.cfg.CacheTTL)
	if !r.Expires.IsZero() && r.Expires.Before(until) {
		until = r.Expires
	}
	if !now.Before(until) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.cfg.MaxCacheEntries {
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= a.cfg.MaxCacheEntries {
			return // full of live entries: review this token again next time
		}
	}
	a.cache[key] = cachedReview{review: r, expires: until}
}

// Stats returns the counters so far.
func (a *TokenReview) Stats() TokenReviewStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// serviceAccountUser splits "system:serviceaccount:<ns>:<sa>".
func serviceAccountUser(user string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", false
	}
	return ns, sa, true
}

func single(v authenticationv1.ExtraValue) (string, bool) {
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// tokenExpiry reads the exp claim of a token the apiserver has just
// accepted, so the signature need not be checked again here. Zero when the
// token is not a JWT or has no exp (then only CacheTTL bounds the cache).
func tokenExpiry(token string) time.Time {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{
		jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512,
	})
	if err != nil {
		return time.Time{}
	}
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil || claims.Expiry == nil {
		return time.Time{}
	}
	return claims.Expiry.Time()
}

// TokenFile is the client half: gRPC per-RPC credentials that send the
// projected ServiceAccount token at Path in TokenMetadataKey, re-reading the
// file on every call. It is satoken.File, which a binary that must not link
// Kubernetes code (the sidecar) imports directly.
type TokenFile = satoken.File
