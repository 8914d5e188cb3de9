package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/causeway-mesh/causeway/identity/ca"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// TestControlCASecret: `causeway control --ca-secret NS/NAME` creates its CA
// in that Secret on a real apiserver, serves the config stream with an SVID
// from it, and after a restart loads the same CA without rewriting the Secret.
func TestControlCASecret(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// This package has no kubetest.Main, so the apiserver is this test's own.
	env := kubetest.StartOwn(ctx, t)
	kc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "causeway-system"}}, metav1.CreateOptions{}); err != nil {
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
	// --kubeconfig would switch the source to --kube; the CA Secret
	// finds the cluster through $KUBECONFIG as kubectl does.
	t.Setenv("KUBECONFIG", kubeconfig)
	manifests := t.TempDir()
	if err := os.WriteFile(filepath.Join(manifests, "svc.yaml"), []byte(controlManifest), 0o644); err != nil {
		t.Fatal(err)
	}

	if code, _, stderr := causeway(t, "", "control", "--manifests", manifests, "--ca-secret", "no-slash"); code == 0 || !strings.Contains(stderr, "--ca-secret") {
		t.Errorf("--ca-secret no-slash: exit %d, stderr %q; want a failure naming the flag", code, stderr)
	}

	var firstVersion string
	for _, step := range []string{"first start creates the CA", "restart loads the same CA"} {
		t.Run(step, func(t *testing.T) {
			addrs := freeAddrs(t, 2)
			grpcAddr, restAddr := addrs[0], addrs[1]
			root := newRootCmd()
			root.SetArgs([]string{"control", "--manifests", manifests, "--listen", grpcAddr, "--rest", restAddr, "--ca-secret", "causeway-system/causeway-ca"})
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(rctx) }()
			defer func() {
				rcancel()
				if err := <-done; err != nil {
					t.Errorf("control exited with %v", err)
				}
			}()
			waitHTTP(t, "http://"+restAddr+"/api/v1/services")

			sec, err := kc.CoreV1().Secrets("causeway-system").Get(ctx, "causeway-ca", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if firstVersion == "" {
				firstVersion = sec.ResourceVersion
			} else if sec.ResourceVersion != firstVersion {
				t.Errorf("restart rewrote the CA Secret (resourceVersion %s -> %s)", firstVersion, sec.ResourceVersion)
			}
			store, err := ca.NewSecretStore(kc.CoreV1(), "causeway-system", "causeway-ca")
			if err != nil {
				t.Fatal(err)
			}
			authority, err := ca.New(ctx, ca.Options{TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local"), Store: store, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			// The config stream's certificate must be an SVID of the
			// Secret's CA. The handshake is only looked at, not completed
			// with a client certificate.
			var served [][]byte
			conn, err := tls.Dial("tcp", grpcAddr, &tls.Config{
				InsecureSkipVerify: true, NextProtos: []string{"h2"},
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error { served = raw; return nil },
			})
			if err == nil {
				conn.Close()
			}
			if served == nil {
				t.Fatalf("no certificate from the config stream at %s: %v", grpcAddr, err)
			}
			id, _, err := x509svid.ParseAndVerify(served, authority)
			if err != nil {
				t.Fatalf("config stream certificate does not verify against the CA in the Secret: %v", err)
			}
			if id.Path() != "/ns/causeway/sa/control" {
				t.Errorf("config stream serves as %s", id)
			}
		})
	}
}
