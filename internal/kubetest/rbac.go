package kubetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// RBACSettled waits until the apiserver's authorizer allows user (in
// groups) every access in allowed. The RBAC authorizer reads Roles and
// bindings through an informer, so RBAC just applied counts only once its
// watch event arrives, which on a loaded machine can be after a test's
// first request (or after a process started at once as that user has been
// refused): a test that checks or uses access right after applying RBAC
// waits here first. An access still denied after 30s fails the test.
func RBACSettled(ctx context.Context, t testing.TB, kc kubernetes.Interface, user string, groups []string, allowed []authorizationv1.ResourceAttributes) {
	t.Helper()
	var denied []string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		denied = denied[:0]
		for _, a := range allowed {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &a}}
			got, err := kc.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				return false, err
			}
			if !got.Status.Allowed {
				denied = append(denied, fmt.Sprintf("%s %s/%s %s/%s", a.Verb, a.Group, a.Resource, a.Namespace, a.Name))
			}
		}
		return len(denied) == 0, nil
	})
	if err != nil {
		t.Fatalf("RBAC for %s not in effect within 30s: %v; still denied: %v", user, err, denied)
	}
}
