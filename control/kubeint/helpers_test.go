package kubeint_test

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

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
