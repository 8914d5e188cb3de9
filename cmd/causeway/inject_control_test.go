package main

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/deploy"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// TestControlWebhook runs `causeway control --kube --webhook-listen` against
// a real apiserver holding the shipped webhook configuration (pointed at
// loopback): the control plane publishes its webhook CA into caBundle, the
// apiserver then trusts it and calls it, and a pod created with client-go
// in an opted-in namespace is stored with the sidecar the flags describe.
func TestControlWebhook(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// This package has no kubetest.Main, so the apiserver is this test's own.
	env := kubetest.StartOwn(ctx, t)
	kc := kubernetes.NewForConfigOrDie(env.Config)
	crds, err := filepath.Glob(filepath.Join("..", "..", "deploy", "crds", "*.yaml"))
	if err != nil || len(crds) == 0 {
		t.Fatalf("deploy/crds: %v", err)
	}
	if err := kubetest.InstallCRDs(ctx, env.Config, crds...); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "causeway-system"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"causeway.dev/inject": "enabled"}}},
	} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := kc.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	addrs := freeAddrs(t, 3)
	webhookAddr, grpcAddr, restAddr := addrs[0], addrs[1], addrs[2]
	data, err := deploy.FS.ReadFile("base/injector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &mwc); err != nil {
		t.Fatal(err)
	}
	for i := range mwc.Webhooks {
		cc := &mwc.Webhooks[i].ClientConfig
		u := "https://" + webhookAddr + *cc.Service.Path
		cc.URL, cc.Service = &u, nil
	}
	if _, err := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	kcfg := clientcmdapi.NewConfig()
	kcfg.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthority: env.Config.TLSClientConfig.CAFile}
	kcfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: env.Config.BearerToken}
	kcfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kcfg.CurrentContext = "test"
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kcfg, kubeconfig); err != nil {
		t.Fatal(err)
	}

	root := newRootCmd()
	root.SetArgs([]string{"control", "--kubeconfig", kubeconfig, "--insecure", "--lease-name", "",
		"--listen", grpcAddr, "--rest", restAddr, "--webhook-listen", webhookAddr,
		"--proxy-image", "causeway:e2e", "--proxy-control-addr", "control.example:15010"})
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(rctx) }()
	defer func() {
		rcancel()
		if err := <-done; err != nil {
			t.Errorf("control exited with %v", err)
		}
	}()

	// The CA reaches caBundle, then the apiserver's webhook client picks up
	// the configuration: poll with dry-run pods until one comes back injected.
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "a"}}}}
	var last *corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := kc.CoreV1().Pods("shop").Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, nil
		}
		last = p
		return len(p.Spec.InitContainers) > 0, nil
	})
	if err != nil {
		got, _ := kc.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwc.Name, metav1.GetOptions{})
		t.Fatalf("no injected pod within 60s (caBundle %d bytes; last pod %v)", len(got.Webhooks[0].ClientConfig.CABundle), last)
	}
	pod, err := kc.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(pod.Spec.InitContainers); n != 2 {
		t.Fatalf("stored pod has %d init containers", n)
	}
	sidecar := pod.Spec.InitContainers[1]
	if sidecar.Image != "causeway:e2e" || !slices.Contains(sidecar.Args, "--control=control.example:15010") {
		t.Errorf("sidecar image %s args %v: not what the flags said", sidecar.Image, sidecar.Args)
	}
}
