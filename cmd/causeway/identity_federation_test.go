package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/internal/loopback"
)

// startProc starts a causeway process (env added to this one's), stopped
// with SIGTERM (by its PID) when the test ends; its output is shown if the
// test failed.
func startProc(t *testing.T, name string, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop on SIGTERM", name)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, b)
		}
		logf.Close()
	})
	return cmd
}

// x509Watcher passes every X.509 context the Workload API pushes to a
// channel, stamped with when it arrived.
type x509Watcher struct{ ch chan stamped }

type stamped struct {
	at  time.Time
	ctx *workloadapi.X509Context
}

func (w x509Watcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.ch <- stamped{time.Now(), c} }
func (w x509Watcher) OnX509ContextWatchError(error)                  {}

// TestIdentityServeFollowsFederation runs the chain with real processes:
// two `causeway control` processes (east, west; west keeps its links in a
// store) and west's `causeway identity serve` following that store. A
// go-spiffe Workload API client of identity serve (what a sidecar is) gets
// east's CA bundle as a federated bundle after `causeway link apply`, and
// loses it after `causeway link remove`; the logged latencies are from the
// CLI's return to the client's update. The store is a file
// (--federation-state), or the causeway-federation Secret on a real
// apiserver (--federation-secret), written and read as deploy/base's
// ServiceAccounts with deploy/base's RBAC.
func TestIdentityServeFollowsFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three processes")
	}
	bin := filepath.Join(t.TempDir(), "causeway")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Run("file", func(t *testing.T) {
		state := []string{"--federation-state", filepath.Join(t.TempDir(), "links.json")}
		followFederation(t, bin, state, nil, state)
	})
	t.Run("secret", func(t *testing.T) {
		controlCfg, agentCfg := federationKube(t)
		secret := []string{"--federation-secret", "causeway-system/causeway-federation"}
		// --kubeconfig would make control read the cluster (--kube); the
		// Secret finds it through $KUBECONFIG, as kubectl does.
		followFederation(t, bin, secret, []string{"KUBECONFIG=" + controlCfg}, append(secret, "--kubeconfig", agentCfg))
	})
}

// federationKube starts an apiserver with deploy/base's namespaces and RBAC
// and returns kubeconfigs impersonating the control plane's and the node
// agent's ServiceAccounts.
func federationKube(t *testing.T) (controlCfg, agentCfg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// This package has no kubetest.Main, so the apiserver is this test's own.
	env := kubetest.StartOwn(ctx, t)
	docs, err := kubetest.ReadFiles("../../deploy/base/namespace.yaml", "../../deploy/base/rbac.yaml", "../../deploy/base/node-agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if _, err := a.Apply(ctx, d.Obj, false); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	as := func(ns, name string) string {
		kcfg := clientcmdapi.NewConfig()
		kcfg.Clusters["test"] = &clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthority: env.Config.TLSClientConfig.CAFile}
		kcfg.AuthInfos["test"] = &clientcmdapi.AuthInfo{Token: env.Config.BearerToken,
			Impersonate:       "system:serviceaccount:" + ns + ":" + name,
			ImpersonateGroups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
		kcfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
		kcfg.CurrentContext = "test"
		p := filepath.Join(t.TempDir(), name+".kubeconfig")
		if err := clientcmd.WriteToFile(*kcfg, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return as("causeway-system", "causeway-control-plane"), as("causeway-node", "causeway-node-agent")
}

// followFederation runs east and west and west's identity serve, west's
// control plane with westStore flags and env, identity serve with
// agentStore flags, and checks what a Workload API client sees.
func followFederation(t *testing.T, bin string, westStore, westEnv, agentStore []string) {
	ports, err := loopback.FreePorts(6)
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	const interval = 100 * time.Millisecond
	eastTD := spiffeid.RequireTrustDomainFromString("east.causeway.local")
	westTD := spiffeid.RequireTrustDomainFromString("west.causeway.local")
	eastCA, westCA := t.TempDir(), t.TempDir()
	control := func(cluster string, td spiffeid.TrustDomain, caDir string, at int, env []string, extra ...string) string {
		rest := addr(at + 1)
		startProc(t, cluster+"-control", env, bin, append([]string{"control", "--manifests", t.TempDir(), "--insecure",
			"--listen", addr(at), "--rest", rest, "--ca-dir", caDir, "--trust-domain", td.Name(),
			"--cluster", cluster, "--federation-listen", addr(at + 2), "--federation-heartbeat", "200ms"}, extra...)...)
		waitHTTP(t, "http://"+rest+"/api/v1/links")
		return "http://" + rest
	}
	east := control("east", eastTD, eastCA, 0, nil)
	west := control("west", westTD, westCA, 3, westEnv, westStore...)

	// The Workload API's socket path must fit a sockaddr_un: not under
	// t.TempDir's long names.
	sockDir, err := os.MkdirTemp("", "cw-fed-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "api.sock")
	startProc(t, "west-identity", nil, bin, append([]string{"identity", "serve", "--socket", socket, "--ca-dir", westCA,
		"--trust-domain", westTD.Name(), "--entry", "uid:" + strconv.Itoa(os.Getuid()) + "=shop/web",
		"--ca-follow-interval", interval.String()}, agentStore...)...)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, err := os.Stat(socket); err != nil; _, err = os.Stat(socket) {
		if ctx.Err() != nil {
			t.Fatalf("identity serve never made %s", socket)
		}
		time.Sleep(10 * time.Millisecond)
	}
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	w := x509Watcher{ch: make(chan stamped, 64)}
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = client.WatchX509Context(ctx, w) }()
	defer func() { cancel(); <-watchDone }()

	// next waits for a pushed context that satisfies cond.
	next := func(what string, cond func(*workloadapi.X509Context) bool) stamped {
		t.Helper()
		for {
			select {
			case s := <-w.ch:
				if cond(s.ctx) {
					return s
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("after 15s: %s", what)
			}
		}
	}
	hasEast := func(c *workloadapi.X509Context) bool { return c.Bundles.Has(eastTD) }
	first := next("the first X.509 context", func(c *workloadapi.X509Context) bool { return c.Bundles.Has(westTD) })
	if hasEast(first.ctx) {
		t.Fatal("east's bundle served before any link")
	}
	if got := first.ctx.DefaultSVID().ID.String(); got != "spiffe://west.causeway.local/ns/shop/sa/web" {
		t.Errorf("SVID %s", got)
	}

	steps := []struct {
		name string
		cli  []string
		want bool // east's bundle served afterwards
	}{
		{"link apply", nil, true},
		{"link remove", []string{"remove", "--control-api", west, "east"}, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			args := s.cli
			if args == nil {
				token := strings.TrimSpace(linkCLI(t, bin, "generate", "--control-api", east, "--ttl", "1m"))
				args = []string{"apply", "--control-api", west, token}
			}
			linkCLI(t, bin, args...)
			done := time.Now()
			got := next("east's bundle served = "+strconv.FormatBool(s.want), func(c *workloadapi.X509Context) bool { return hasEast(c) == s.want })
			t.Logf("causeway link %s returned -> Workload API client updated: %s (follow interval %s)", args[0], got.at.Sub(done).Round(time.Millisecond), interval)
			if !s.want {
				return
			}
			b, err := got.ctx.Bundles.GetX509BundleForTrustDomain(eastTD)
			if err != nil {
				t.Fatal(err)
			}
			want := caRoots(t, bin, eastCA, eastTD)
			if len(b.X509Authorities()) != len(want) || !b.X509Authorities()[0].Equal(want[0]) {
				t.Errorf("federated bundle for %s is not east's CA bundle", eastTD)
			}
		})
	}
}

// caRoots is `causeway identity ca show` of a CA directory.
func caRoots(t *testing.T, bin, dir string, td spiffeid.TrustDomain) []*x509.Certificate {
	t.Helper()
	out, err := exec.Command(bin, "identity", "ca", "show", "--ca-dir", dir, "--trust-domain", td.Name()).Output()
	if err != nil {
		t.Fatalf("identity ca show: %v", err)
	}
	var certs []*x509.Certificate
	for rest := out; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		t.Fatalf("identity ca show printed no certificate:\n%s", out)
	}
	return certs
}

// TestControlFederationStoreUsage: the link store and gateway flags of
// `causeway control` are refused (exit 2) before anything is bound or
// dialled.
func TestControlFederationStoreUsage(t *testing.T) {
	dir := t.TempDir()
	base := []string{"control", "--insecure", "--manifests", dir, "--listen", "127.0.0.1:0", "--rest", "", "--ca-dir", t.TempDir()}
	cases := []struct {
		name string
		args []string
	}{
		{"state without federation", []string{"--federation-state", filepath.Join(dir, "f")}},
		{"secret without federation", []string{"--federation-secret", "causeway-system/causeway-federation"}},
		{"state and secret", []string{"--federation-listen", "127.0.0.1:0", "--cluster", "east", "--federation-state", filepath.Join(dir, "f"), "--federation-secret", "a/b"}},
		{"secret without a namespace", []string{"--federation-listen", "127.0.0.1:0", "--cluster", "east", "--federation-secret", "causeway-federation"}},
		{"gateway service without federation", []string{"--gateway-service", "causeway-gateway/causeway-gateway"}},
		{"federation service without federation", []string{"--federation-service", "causeway-system/causeway-federation"}},
		{"federation service with a bad name", []string{"--federation-listen", "127.0.0.1:0", "--cluster", "east", "--federation-service", "causeway-system/Federation"}},
		{"gateway service without a namespace", []string{"--federation-listen", "127.0.0.1:0", "--cluster", "east", "--gateway-service", "causeway-gateway"}},
		{"gateway service with an empty port", []string{"--federation-listen", "127.0.0.1:0", "--cluster", "east", "--gateway-service", "gw/eastwest:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, errOut := causeway(t, "", append(base, tc.args...)...); code != 2 {
				t.Errorf("exit %d (%s), want 2", code, errOut)
			}
		})
	}
}
