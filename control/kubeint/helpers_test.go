package kubeint_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigAndBinary writes a kubeconfig for the test apiserver and builds
// the causeway binary into dir, as a user would run `causeway control --kube`.
func kubeconfigAndBinary(t *testing.T, ctx context.Context, cfg *rest.Config, dir string) (kubeconfig, bin string) {
	t.Helper()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "admin"}
	kc.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(dir, "causeway")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/causeway")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return kubeconfig, bin
}

// rbacSettled waits until the apiserver's authorizer allows user (in
// groups) every access in allowed. The RBAC authorizer reads Roles and
// bindings through an informer, so RBAC just applied is in effect only once
// its watch event arrives; a process started at once as that user (whose CA
// Secret read, refused, ends `causeway control`) could come first on a loaded
// machine. An access still denied after 30s fails the test.
func rbacSettled(ctx context.Context, t *testing.T, kc kubernetes.Interface, user string, groups []string, allowed []authorizationv1.ResourceAttributes) {
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
