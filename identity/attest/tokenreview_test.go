package attest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// TestMain stops the kube-apiserver the TokenReview tests start on first use.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

// cluster is a namespace on the real apiserver with helpers to make
// ServiceAccounts, Pods and tokens in it.
type cluster struct {
	t   testing.TB
	ctx context.Context
	kc  kubernetes.Interface
	cfg *rest.Config
	ns  string
}

var nsSeq atomic.Int32

func newCluster(t testing.TB) *cluster {
	t.Helper()
	cfg := kubetest.Config(t)
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c := &cluster{t: t, ctx: ctx, kc: kc, cfg: cfg, ns: fmt.Sprintf("attest-%d-%d", os.Getpid(), nsSeq.Add(1))}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *cluster) serviceAccount(name string) *corev1.ServiceAccount {
	c.t.Helper()
	sa, err := c.kc.CoreV1().ServiceAccounts(c.ns).Create(c.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return sa
}

// pod creates a Pod running as sa. No scheduler runs, so it stays Pending,
// which is all TokenRequest and TokenReview need.
func (c *cluster) pod(name, sa string) *corev1.Pod {
	c.t.Helper()
	p, err := c.kc.CoreV1().Pods(c.ns).Create(c.ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			ServiceAccountName:           sa,
			AutomountServiceAccountToken: new(false),
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// token asks the apiserver for a token of sa for audience, bound to pod if
// it is not nil: what the kubelet writes into a projected volume.
func (c *cluster) token(sa, audience string, pod *corev1.Pod) string {
	c.t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{audience},
		ExpirationSeconds: new(int64(600)), // the apiserver's minimum
	}}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := c.kc.CoreV1().ServiceAccounts(c.ns).CreateToken(c.ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return tr.Status.Token
}

// waitRevoked waits until the apiserver itself refuses token. It checks
// bound objects through informer caches, which trail a deletion by a moment,
// and it caches a token it accepted for 10s (kube-apiserver's token success
// cache), so a token reviewed before the deletion takes that long.
func (c *cluster) waitRevoked(token string) {
	c.t.Helper()
	err := wait.PollUntilContextTimeout(c.ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		tr, err := c.kc.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{attest.DefaultAudience}},
		}, metav1.CreateOptions{})
		return err == nil && !tr.Status.Authenticated, err
	})
	if err != nil {
		c.t.Fatalf("token still accepted by the apiserver after its ServiceAccount or Pod was deleted: %v", err)
	}
}

func (c *cluster) attestor(mod func(*attest.TokenReviewConfig)) *attest.TokenReview {
	c.t.Helper()
	cfg := attest.TokenReviewConfig{TrustDomain: td, Client: c.kc.AuthenticationV1()}
	if mod != nil {
		mod(&cfg)
	}
	a, err := attest.NewTokenReview(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	return a
}

func (c *cluster) id(sa string) spiffeid.ID {
	return spiffeid.RequireFromSegments(td, "ns", c.ns, "sa", sa)
}

func withToken(tok string) attest.Caller {
	return attest.Caller{PID: 1, Metadata: map[string][]string{attest.TokenMetadataKey: {tok}}}
}

// forgedToken is a well-formed ServiceAccount JWT for the right audience,
// signed by a key the apiserver does not know.
func forgedToken(t testing.TB, ns, sa string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: "https://127.0.0.1", Subject: "system:serviceaccount:" + ns + ":" + sa,
		Audience: jwt.Audience{attest.DefaultAudience}, IssuedAt: jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestTokenReviewAttest: tokens the apiserver vouches for, for our audience
// and bound to a live Pod, name their ServiceAccount; everything else is
// refused with ErrNoIdentity.
func TestTokenReviewAttest(t *testing.T) {
	c := newCluster(t)
	c.serviceAccount("web")
	c.serviceAccount("orders")
	web := c.pod("web-0", "web")
	orders := c.pod("orders-0", "orders")

	tests := []struct {
		name    string
		mod     func(*attest.TokenReviewConfig)
		caller  func(t *testing.T) attest.Caller
		want    spiffeid.ID // zero: refused
		wantPod *corev1.Pod
	}{
		{"pod-bound token", nil, func(*testing.T) attest.Caller { return withToken(c.token("web", "causeway", web)) }, c.id("web"), web},
		{"another ServiceAccount", nil, func(*testing.T) attest.Caller { return withToken(c.token("orders", "causeway", orders)) }, c.id("orders"), orders},
		{"token file with trailing newline", nil, func(*testing.T) attest.Caller { return withToken(c.token("web", "causeway", web) + "\n") }, c.id("web"), web},
		{"configured audience", func(cfg *attest.TokenReviewConfig) { cfg.Audiences = []string{"mesh.example", "spire"} },
			func(*testing.T) attest.Caller { return withToken(c.token("web", "spire", web)) }, c.id("web"), web},
		{"unbound token when allowed", func(cfg *attest.TokenReviewConfig) { cfg.AllowUnboundTokens = true },
			func(*testing.T) attest.Caller { return withToken(c.token("web", "causeway", nil)) }, c.id("web"), nil},

		{"wrong audience", nil, func(*testing.T) attest.Caller { return withToken(c.token("web", "vault", web)) }, spiffeid.ID{}, nil},
		{"apiserver audience", nil, func(*testing.T) attest.Caller { return withToken(c.token("web", c.cfg.Host, web)) }, spiffeid.ID{}, nil},
		{"unbound token by default", nil, func(*testing.T) attest.Caller { return withToken(c.token("web", "causeway", nil)) }, spiffeid.ID{}, nil},
		{"deleted pod", nil, func(t *testing.T) attest.Caller {
			p := c.pod("gone-0", "web")
			tok := c.token("web", "causeway", p)
			if err := c.kc.CoreV1().Pods(c.ns).Delete(c.ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.waitRevoked(tok)
			return withToken(tok)
		}, spiffeid.ID{}, nil},
		{"deleted ServiceAccount", nil, func(t *testing.T) attest.Caller {
			c.serviceAccount("batch")
			tok := c.token("batch", "causeway", c.pod("batch-0", "batch"))
			if err := c.kc.CoreV1().ServiceAccounts(c.ns).Delete(c.ctx, "batch", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.waitRevoked(tok)
			return withToken(tok)
		}, spiffeid.ID{}, nil},
		{"recreated ServiceAccount", nil, func(t *testing.T) attest.Caller {
			c.serviceAccount("cron")
			tok := c.token("cron", "causeway", c.pod("cron-0", "cron"))
			if err := c.kc.CoreV1().ServiceAccounts(c.ns).Delete(c.ctx, "cron", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			c.serviceAccount("cron") // same name, new UID
			c.waitRevoked(tok)
			return withToken(tok)
		}, spiffeid.ID{}, nil},
		{"forged signature", nil, func(t *testing.T) attest.Caller { return withToken(forgedToken(t, c.ns, "web")) }, spiffeid.ID{}, nil},
		{"garbage", nil, func(*testing.T) attest.Caller { return withToken("not-a-token") }, spiffeid.ID{}, nil},
		{"admin credential, not a ServiceAccount", func(cfg *attest.TokenReviewConfig) { cfg.Audiences = []string{c.cfg.Host} },
			func(*testing.T) attest.Caller { return withToken(c.cfg.BearerToken) }, spiffeid.ID{}, nil},
		{"empty token", nil, func(*testing.T) attest.Caller { return withToken(" ") }, spiffeid.ID{}, nil},
		{"oversized token", nil, func(*testing.T) attest.Caller { return withToken(string(make([]byte, 17<<10))) }, spiffeid.ID{}, nil},
		{"no metadata", nil, func(*testing.T) attest.Caller { return attest.Caller{PID: 1} }, spiffeid.ID{}, nil},
		{"two tokens", nil, func(*testing.T) attest.Caller {
			return attest.Caller{Metadata: map[string][]string{attest.TokenMetadataKey: {c.token("web", "causeway", web), c.token("orders", "causeway", orders)}}}
		}, spiffeid.ID{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := c.attestor(tt.mod)
			caller := tt.caller(t)
			got, err := a.Attest(c.ctx, caller)
			if tt.want.IsZero() {
				if !errors.Is(err, attest.ErrNoIdentity) {
					t.Fatalf("Attest = %v, %v; want ErrNoIdentity", got, err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Attest = %s, want %s", got, tt.want)
			}
			r, err := a.Review(c.ctx, caller.Metadata[attest.TokenMetadataKey][0])
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantPod != nil && (r.PodName != tt.wantPod.Name || r.PodUID != string(tt.wantPod.UID)) {
				t.Errorf("Review pod %s/%s, want %s/%s", r.PodName, r.PodUID, tt.wantPod.Name, tt.wantPod.UID)
			}
			if left := time.Until(r.Expires); left < 9*time.Minute || left > 10*time.Minute {
				t.Errorf("Review expires in %v; want the token's exp, about 10m away", left)
			}
		})
	}
}

// TestTokenReviewUnreachable: an apiserver that cannot be asked is not a
// verdict on the caller, so the error is not ErrNoIdentity (the server
// answers Unavailable and the client retries).
func TestTokenReviewUnreachable(t *testing.T) {
	t.Parallel()
	kc, err := kubernetes.NewForConfig(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a, err := attest.NewTokenReview(attest.TokenReviewConfig{TrustDomain: td, Client: kc.AuthenticationV1()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Attest(context.Background(), withToken("header.payload.signature"))
	if err == nil || errors.Is(err, attest.ErrNoIdentity) {
		t.Fatalf("Attest with no apiserver = %v; want an error other than ErrNoIdentity", err)
	}
}

func TestNewTokenReviewConfig(t *testing.T) {
	t.Parallel()
	kc := kubernetes.New(nil)
	tests := []struct {
		name string
		cfg  attest.TokenReviewConfig
	}{
		{"no trust domain", attest.TokenReviewConfig{Client: kc.AuthenticationV1()}},
		{"no client", attest.TokenReviewConfig{TrustDomain: td}},
		{"empty audience", attest.TokenReviewConfig{TrustDomain: td, Client: kc.AuthenticationV1(), Audiences: []string{"causeway", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := attest.NewTokenReview(tt.cfg); err == nil {
				t.Error("accepted")
			}
		})
	}
}
