package attest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/causeway-mesh/causeway/identity/attest"
)

// answering returns a fake clientset whose TokenReviews get status st: for
// answers a real apiserver does not give (authenticators that ignore
// audiences, webhook users), so each check stands on its own.
func answering(st authenticationv1.TokenReviewStatus) *fake.Clientset {
	kc := fake.NewClientset()
	kc.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, &authenticationv1.TokenReview{Status: st}, nil
	})
	return kc
}

func podExtra() map[string]authenticationv1.ExtraValue {
	return map[string]authenticationv1.ExtraValue{
		"authentication.kubernetes.io/pod-name": {"web-0"},
		"authentication.kubernetes.io/pod-uid":  {"0b8e4a52-0d6f-4a0e-9f3b-1b1f0c7f2a11"},
	}
}

// TestTokenReviewStatusChecks: what the attestor itself checks in the
// apiserver's answer, beyond authenticated.
func TestTokenReviewStatusChecks(t *testing.T) {
	t.Parallel()
	sa := authenticationv1.UserInfo{Username: "system:serviceaccount:shop:web", Extra: podExtra()}
	tests := []struct {
		name string
		st   authenticationv1.TokenReviewStatus
		want string // empty: refused
	}{
		{"accepted", authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"causeway"}, User: sa}, "spiffe://cluster.local/ns/shop/sa/web"},
		{"not authenticated", authenticationv1.TokenReviewStatus{Audiences: []string{"causeway"}, User: sa}, ""},
		{"audience-agnostic authenticator", authenticationv1.TokenReviewStatus{Authenticated: true, User: sa}, ""},
		{"other audience", authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"vault"}, User: sa}, ""},
		{"webhook user", authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"causeway"},
			User: authenticationv1.UserInfo{Username: "alice@example.com", Extra: podExtra()}}, ""},
		{"namespace not a DNS label", authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"causeway"},
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:Shop/..:web", Extra: podExtra()}}, ""},
		{"two pod names", authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"causeway"},
			User: authenticationv1.UserInfo{Username: sa.Username, Extra: map[string]authenticationv1.ExtraValue{
				"authentication.kubernetes.io/pod-name": {"web-0", "web-1"}, "authentication.kubernetes.io/pod-uid": {"u"}}}}, ""},
		{"no pod uid", authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"causeway"},
			User: authenticationv1.UserInfo{Username: sa.Username, Extra: map[string]authenticationv1.ExtraValue{
				"authentication.kubernetes.io/pod-name": {"web-0"}}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := attest.NewTokenReview(attest.TokenReviewConfig{TrustDomain: td, Client: answering(tt.st).AuthenticationV1()})
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Attest(context.Background(), withToken("opaque-token"))
			if tt.want == "" {
				if !errors.Is(err, attest.ErrNoIdentity) {
					t.Fatalf("Attest = %v, %v; want ErrNoIdentity", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != spiffeid.RequireFromString(tt.want) {
				t.Errorf("Attest = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestTokenReviewLeaderGivesUp: when the call whose review others wait on
// is cancelled, a waiter with time left asks again for itself rather than
// taking the cancellation as its answer.
func TestTokenReviewLeaderGivesUp(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{}, 2)
	calls := 0
	kc := fake.NewClientset()
	kc.PrependReactor("create", "tokenreviews", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++ // reactors run under the fake's lock
		entered <- struct{}{}
		if calls == 1 {
			<-release
			return true, nil, context.Canceled
		}
		return true, &authenticationv1.TokenReview{Status: authenticationv1.TokenReviewStatus{Authenticated: true, Audiences: []string{"causeway"},
			User: authenticationv1.UserInfo{Username: "system:serviceaccount:shop:web", Extra: podExtra()}}}, nil
	})
	a, err := attest.NewTokenReview(attest.TokenReviewConfig{TrustDomain: td, Client: kc.AuthenticationV1()})
	if err != nil {
		t.Fatal(err)
	}
	leader := make(chan error, 1)
	go func() { _, err := a.Attest(context.Background(), withToken("tok")); leader <- err }()
	<-entered // the leader's review is in flight
	waiter := make(chan error, 1)
	go func() { _, err := a.Attest(context.Background(), withToken("tok")); waiter <- err }()
	for a.Stats().Shared == 0 { // the waiter is waiting on the leader
		select {
		case err := <-waiter:
			t.Fatalf("waiter returned before the leader: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	if err := <-leader; err == nil || errors.Is(err, attest.ErrNoIdentity) {
		t.Errorf("leader err = %v, want its cancellation (not a refusal)", err)
	}
	if err := <-waiter; err != nil {
		t.Errorf("waiter err = %v, want its own successful review", err)
	}
	if s := a.Stats(); s.Reviews != 2 || s.Shared != 1 {
		t.Errorf("stats %+v, want 2 reviews, 1 shared", s)
	}
}
