package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/identity/identitytest"
	"github.com/causeway-mesh/causeway/identity/workloadapi"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// runAsProxy, set in a child's environment, makes this test binary run
// main's run(args) instead of the tests: the sidecar as a process of its
// own, without a separate build.
const runAsProxy = "CAUSEWAY_PROXY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsProxy) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(kubetest.Main(m))
}

// TestSidecarProcessTokenReview: a causeway-proxy process given a projected
// ServiceAccount token (made with the TokenRequest API, bound to its Pod,
// as the kubelet writes it) gets the X.509-SVID of that ServiceAccount
// from a Workload API that attests callers with TokenReview on a real
// apiserver; a token for another audience, or one whose Pod was deleted,
// gets PermissionDenied and the sidecar does not start.
func TestSidecarProcessTokenReview(t *testing.T) {
	cfg := kubetest.Config(t)
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := fmt.Sprintf("sidecar-token-%d", os.Getpid())
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	mustCreate(t, func() error {
		_, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, func() error {
		_, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, metav1.CreateOptions{})
		return err
	})
	pod := func(name string) *corev1.Pod {
		p, err := kc.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{ServiceAccountName: "web", AutomountServiceAccountToken: new(false),
				Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := func(audience string, p *corev1.Pod) string {
		tr, err := kc.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "web", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
			Audiences: []string{audience}, ExpirationSeconds: new(int64(600)),
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	live, gone := pod("web-0"), pod("web-1")
	revoked := token(attest.DefaultAudience, gone)
	if err := kc.CoreV1().Pods(ns).Delete(ctx, gone.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	// The apiserver checks bound Pods through an informer: wait until it
	// refuses the token itself.
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		tr, err := kc.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: revoked, Audiences: []string{attest.DefaultAudience}}}, metav1.CreateOptions{})
		return err == nil && !tr.Status.Authenticated, err
	}); err != nil {
		t.Fatalf("token of the deleted Pod still accepted: %v", err)
	}

	authority := identitytest.NewCA(t, td, nil)
	tr, err := attest.NewTokenReview(attest.TokenReviewConfig{TrustDomain: td, Client: kc.AuthenticationV1()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := workloadapi.New(workloadapi.Config{CA: authority, Attestor: tr, Logger: identitytest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	l, err := workloadapi.Listen(filepath.Join(identitytest.SocketDir(t), "api.sock"))
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() { srv.Stop(); <-served }()

	dir := t.TempDir()
	bootstrap := filepath.Join(dir, "bootstrap.json")
	if err := os.WriteFile(bootstrap, []byte(`{"admin": "127.0.0.1:0"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  string // the identity in the started log line; "" = refused
	}{
		{"pod-bound token for causeway", token(attest.DefaultAudience, live), "spiffe://cluster.local/ns/" + ns + "/sa/web"},
		{"token for another audience", token("vault", live), ""},
		{"token of a deleted pod", revoked, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokenFile := filepath.Join(dir, fmt.Sprintf("token-%d", i))
			if err := os.WriteFile(tokenFile, []byte(tt.token), 0o600); err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuffer
			cmd := exec.CommandContext(ctx, os.Args[0], "proxy", "--config", bootstrap, "--spiffe-socket", "unix://"+l.Addr().String(),
				"--spiffe-token-file", tokenFile, "--svid-wait", "3s")
			cmd.Env = append(os.Environ(), runAsProxy+"=1")
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			if tt.want == "" {
				select {
				case err := <-exited:
					if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "PermissionDenied") {
						t.Fatalf("sidecar exited (%v) with %d; want 1 after PermissionDenied; stderr:\n%s", err, cmd.ProcessState.ExitCode(), stderr.String())
					}
				case <-time.After(20 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
					t.Fatalf("sidecar with a bad token still running after 20s; stderr:\n%s", stderr.String())
				}
				return
			}
			defer func() {
				_ = cmd.Process.Signal(os.Interrupt)
				if err := <-exited; err != nil {
					t.Errorf("sidecar after SIGINT: %v; stderr:\n%s", err, stderr.String())
				}
			}()
			line := "identity=" + tt.want
			for !strings.Contains(stderr.String(), line) {
				select {
				case err := <-exited:
					exited <- err
					t.Fatalf("sidecar exited (%v); stderr:\n%s", err, stderr.String())
				case <-time.After(20 * time.Millisecond):
				}
				if time.Since(start) > 20*time.Second {
					t.Fatalf("no %q in the sidecar's log after 20s:\n%s", line, stderr.String())
				}
			}
			t.Logf("sidecar process had its SVID %s after %s", tt.want, time.Since(start).Round(time.Millisecond))
		})
	}
	if s := tr.Stats(); s.Reviews == 0 {
		t.Errorf("TokenReview stats %+v: no review was made", s)
	}
}

func mustCreate(t *testing.T, create func() error) {
	t.Helper()
	if err := create(); err != nil {
		t.Fatal(err)
	}
}

// lockedBuffer is a bytes.Buffer the exec copier writes while the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
