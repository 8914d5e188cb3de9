package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/proxy/sidecar"
)

// TestControlCARotation runs cluster mode's identity chain on a real
// apiserver with a CA lifetime of 20 s: `causeway control --ca-secret`
// (holding the --ca-lease, so it rotates), a node agent `causeway identity
// serve --attest tokenreview --ca-lease ""` that only follows the Secret,
// and a sidecar with a projected-style token (TokenRequest) connected to
// the control plane. Across two rotations (prepare at 10 s, activate
// at about 17 s, and again 10 s later) the sidecar's config stream stays in sync, and
// a Workload API client doing a fresh mTLS handshake with the control plane
// every 100 ms never fails: the node agent hands out the new root before
// anything is signed with it, and the old root stays trusted until every
// SVID it signed is gone.
func TestControlCARotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := kubetest.StartOwn(ctx, t)
	kc, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"causeway-system", "shop"} {
		if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kc.CoreV1().ServiceAccounts("shop").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := kc.CoreV1().Pods("shop").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
		Spec: corev1.PodSpec{ServiceAccountName: "web", AutomountServiceAccountToken: new(false),
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := kc.CoreV1().ServiceAccounts("shop").CreateToken(ctx, "web", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences: []string{attest.DefaultAudience}, ExpirationSeconds: new(int64(600)),
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tokenFile, bootstrap := filepath.Join(dir, "token"), filepath.Join(dir, "bootstrap.json")
	kubeconfig := writeKubeconfig(t, env)
	manifests := t.TempDir()
	for name, data := range map[string]string{tokenFile: tr.Status.Token, bootstrap: `{"admin": "127.0.0.1:0"}`,
		filepath.Join(manifests, "svc.yaml"): controlManifest} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The control plane finds the CA Secret's cluster as kubectl would
	// (--kubeconfig would switch its source to --kube).
	t.Setenv("KUBECONFIG", kubeconfig)

	// Lifetimes short enough for two rotations in a test, long enough that
	// a loaded machine (CI runs every package at once) still renews SVIDs
	// in time: they are renewed at half-life, 2 s before expiry.
	const caTTL = 20 * time.Second
	lifetimes := []string{"--ca-ttl", caTTL.String(), "--svid-ttl", "4s", "--rotation-overlap", "8s",
		"--ca-secret", "causeway-system/causeway-ca", "--ca-follow-interval", "200ms"}
	var wg sync.WaitGroup
	defer wg.Wait()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	start := func(name string, args ...string) {
		root := newRootCmd()
		root.SetArgs(args)
		wg.Go(func() {
			if err := root.ExecuteContext(runCtx); err != nil {
				t.Errorf("%s exited: %v", name, err)
			}
		})
	}
	begin := time.Now()
	addrs := freeAddrs(t, 2)
	grpcAddr, restAddr := addrs[0], addrs[1]
	start("control", append([]string{"control", "--manifests", manifests, "--listen", grpcAddr, "--rest", restAddr}, lifetimes...)...)
	waitHTTP(t, "http://"+restAddr+"/api/v1/services")
	sockDir, err := os.MkdirTemp("", "cw-rot-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	socket := filepath.Join(sockDir, "api.sock")
	start("identity serve", append([]string{"identity", "serve", "--socket", socket, "--attest", "tokenreview",
		"--kubeconfig", kubeconfig, "--ca-lease", ""}, lifetimes...)...)
	addr := "unix://" + socket

	controlID := spiffeid.RequireFromString("spiffe://cluster.local/ns/causeway/sa/control")
	wg.Go(func() {
		err := sidecar.Run(runCtx, sidecar.Flags{Bootstrap: bootstrap, SpiffeSocket: addr, SpiffeTokenFile: tokenFile,
			Control: grpcAddr, ControlID: controlID.String(), Node: "web-0", SVIDWait: 30 * time.Second}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})

	// The probe: go-spiffe's X509Source through the node agent, with the
	// token, as the sidecar gets its SVIDs.
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr),
		workloadapi.WithDialOptions(grpc.WithPerRPCCredentials(attest.TokenFile{Path: tokenFile}))))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tlsCfg := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(controlID))
	tlsCfg.NextProtos = []string{"h2"}

	// What the client sees, and when: each new root in its bundle
	// (prepared and published) and each new intermediate in its SVID chain
	// (activated). Certificates' own times have whole seconds and are
	// backdated, so the times measured here are the ones reported.
	var published, signing []time.Duration
	seenRoots, seenInters := map[string]bool{}, map[string]bool{}
	var handshakes, failures int
	for len(signing) < 3 && time.Since(begin) < 90*time.Second {
		now := time.Since(begin)
		b, err := src.GetX509BundleForTrustDomain(controlID.TrustDomain())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.X509Authorities() {
			if k := string(r.Raw); !seenRoots[k] {
				seenRoots[k] = true
				published = append(published, now)
			}
		}
		svid, err := src.GetX509SVID()
		if err != nil {
			t.Fatal(err)
		}
		if k := string(svid.Certificates[len(svid.Certificates)-1].Raw); !seenInters[k] {
			seenInters[k] = true
			signing = append(signing, now)
		}
		conn, err := tls.Dial("tcp", grpcAddr, tlsCfg)
		handshakes++
		if err != nil {
			failures++
			t.Errorf("handshake %d at %s: %v", handshakes, time.Since(begin).Round(time.Millisecond), err)
		} else {
			conn.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(signing) < 3 || len(published) < 3 {
		t.Fatalf("in %s the client saw %d roots and %d signing intermediates; want the first and two successors", time.Since(begin), len(published), len(signing))
	}
	for i := 1; i < 3; i++ {
		t.Logf("rotation %d (CA TTL %s): new root in the client's bundle at %s, its SVIDs signed by the successor from %s: %s published before signing, %s after the previous activation",
			i, caTTL, published[i].Round(time.Millisecond), signing[i].Round(time.Millisecond),
			(signing[i] - published[i]).Round(time.Millisecond), (signing[i] - signing[i-1]).Round(time.Millisecond))
		// Order, not timing: the client must hold a root before it holds
		// an SVID signed under it (how long before is logged above).
		if signing[i] < published[i] {
			t.Errorf("rotation %d: an SVID signed by the successor reached the client %s before its root did", i, published[i]-signing[i])
		}
	}
	t.Logf("%d fresh mTLS handshakes with the control plane across two rotations, %d failed", handshakes, failures)

	var proxy struct {
		InSync bool `json:"inSync"`
		Node   struct {
			Identity string `json:"identity"`
		} `json:"node"`
	}
	getJSON(t, "http://"+restAddr+"/api/v1/proxies/web-0", &proxy)
	if !proxy.InSync || proxy.Node.Identity != "spiffe://cluster.local/ns/shop/sa/web" {
		t.Errorf("after two rotations the sidecar's sync state is %+v; want in sync as shop/web", proxy)
	}
	stop()
}

// writeKubeconfig writes a kubeconfig for env's apiserver.
func writeKubeconfig(t *testing.T, env *kubetest.Env) string {
	t.Helper()
	kcfg := clientcmdapi.NewConfig()
	kcfg.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthority: env.Config.TLSClientConfig.CAFile}
	kcfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: env.Config.BearerToken}
	kcfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kcfg.CurrentContext = "test"
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kcfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}
