package kubetest

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/causeway-mesh/causeway/internal/loopback"
)

// Version is the Kubernetes release scripts/kube-apiserver.sh builds by default.
const Version = "v1.34.4"

// RequireEnv names the variable that turns a missing apiserver from a skip
// into a failure.
const RequireEnv = "CAUSEWAY_REQUIRE_KUBE"

// adminToken is the static bearer token of the test's cluster-admin. It only
// ever exists in a temporary directory on loopback.
const adminToken = "causeway-kubetest-admin"

// Binaries returns the paths of kube-apiserver and etcd, or an error saying
// how to get them.
func Binaries() (apiserver, etcd string, err error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	bin := filepath.Join(cache, "causeway", "kube-"+Version, "bin")
	apiserver = cmp.Or(os.Getenv("KUBE_APISERVER_BIN"), filepath.Join(bin, "kube-apiserver"))
	etcd = os.Getenv("ETCD_BIN")
	if etcd == "" {
		etcd = filepath.Join(bin, "etcd")
		if _, err := os.Stat(etcd); err != nil {
			etcd, _ = exec.LookPath("etcd")
		}
	}
	var missing []string
	if !executable(apiserver) {
		missing = append(missing, "kube-apiserver ("+apiserver+")")
	}
	if etcd == "" || !executable(etcd) {
		missing = append(missing, "etcd")
	}
	if len(missing) > 0 {
		return "", "", fmt.Errorf("missing %s: run scripts/kube-apiserver.sh or set KUBE_APISERVER_BIN and ETCD_BIN", strings.Join(missing, " and "))
	}
	return apiserver, etcd, nil
}

func executable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Env is one running etcd + kube-apiserver pair.
type Env struct {
	// Config reaches the apiserver as cluster-admin. Copy it (rest.CopyConfig)
	// before changing it.
	Config *rest.Config
	// Dir holds the data, keys and logs; removed by Stop.
	Dir string
	// Ready is how long the apiserver took from exec to a ready /readyz.
	Ready time.Duration

	etcd, apiserver *proc
	keepDir         bool
	etcdDir         string // outside Dir when on tmpfs
}

// Start runs etcd and kube-apiserver on free loopback ports and waits until
// /readyz answers ok. On error nothing is left running.
func Start(ctx context.Context) (env *Env, err error) {
	apiserverBin, etcdBin, err := Binaries()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "causeway-kubetest-")
	if err != nil {
		return nil, err
	}
	env = &Env{Dir: dir}
	defer func() {
		if err != nil {
			env.keepDir = os.Getenv("KUBETEST_KEEP") != ""
			env.Stop()
		}
	}()
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return env, err
	}
	if err := writeKeys(pki); err != nil {
		return env, err
	}
	ports, err := loopback.FreePorts(3)
	if err != nil {
		return env, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	kasPort := strconv.Itoa(ports[2])

	// etcd fsyncs every write; on tmpfs that costs nothing, which keeps a
	// loaded two-core CI machine from stalling the apiserver. Test data
	// needs no durability.
	env.etcdDir = filepath.Join(dir, "etcd")
	if shm, err := os.MkdirTemp("/dev/shm", "causeway-kubetest-etcd-"); err == nil {
		env.etcdDir = shm
	}

	start := time.Now()
	env.etcd, err = launch(etcdBin, filepath.Join(dir, "etcd.log"),
		"--name", "kubetest", "--data-dir", env.etcdDir,
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL,
		"--log-level", "warn")
	if err != nil {
		return env, err
	}
	env.apiserver, err = launch(apiserverBin, filepath.Join(dir, "kube-apiserver.log"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", kasPort,
		"--cert-dir", pki,
		"--service-account-issuer", "https://127.0.0.1:"+kasPort,
		"--service-account-key-file", filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--token-auth-file", filepath.Join(pki, "tokens.csv"),
		"--authorization-mode", "RBAC",
		"--allow-privileged=true",
		// Leader election tests need short leases and prompt events; the
		// default event TTL is fine, but a small watch cache keeps memory down.
		"--default-watch-cache-size", "50",
	)
	if err != nil {
		return env, err
	}
	host := "https://127.0.0.1:" + kasPort
	if err := env.waitReady(ctx, host); err != nil {
		return env, err
	}
	env.Ready = time.Since(start)
	env.Config = &rest.Config{
		Host:            host,
		BearerToken:     adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(pki, "apiserver.crt")},
		// The tests create many objects quickly; client-side throttling
		// would only add waiting.
		QPS:   200,
		Burst: 400,
	}
	return env, nil
}

// proc is a started process and the goroutine that reaps it.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait has returned
	err  error         // Wait's result, readable after done
}

// launch starts a process whose output goes to a log file, and reaps it
// whenever it exits.
func launch(bin, logPath string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	// The child holds its own descriptor; ours is not needed any more.
	logf.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls /readyz until it says ok, a process dies, or ctx ends.
func (e *Env) waitReady(ctx context.Context, host string) error {
	// The serving certificate does not exist yet when polling starts, so
	// readiness is checked without verification; Config verifies it.
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // loopback readiness probe only
	}
	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-e.etcd.done:
			return fmt.Errorf("etcd exited: %v\n%s", e.etcd.err, e.logTail())
		case <-e.apiserver.done:
			return fmt.Errorf("kube-apiserver exited: %v\n%s", e.apiserver.err, e.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("kube-apiserver not ready after 90s\n%s", e.logTail())
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := client.Do(req)
		if err != nil {
			continue
		}
		body := make([]byte, 8)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body[:n])) == "ok" {
			return nil
		}
	}
}

// logTail returns the end of both logs, for error messages.
func (e *Env) logTail() string {
	var b strings.Builder
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		data, _ := os.ReadFile(filepath.Join(e.Dir, name))
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		lines = lines[max(0, len(lines)-15):]
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", name, len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}

// Stop ends the apiserver, then etcd (SIGTERM, then SIGKILL after 10s), and
// removes Dir. It is safe to call more than once.
func (e *Env) Stop() {
	for _, p := range []*proc{e.apiserver, e.etcd} {
		p.stop()
	}
	e.apiserver, e.etcd = nil, nil
	if e.Dir != "" && !e.keepDir {
		os.RemoveAll(e.Dir)
		os.RemoveAll(e.etcdDir)
	}
}

func (p *proc) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// writeKeys writes the service-account signing key pair and the static token
// file that makes the test client a member of system:masters.
func writeKeys(pki string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(adminToken + ",kubetest-admin,kubetest-admin-uid,system:masters\n"),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(pki, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// shared is the apiserver of this test binary, started by the first Config
// call and stopped by Main, or why there is none.
var shared struct {
	once    sync.Once
	mainRan bool
	env     *Env
	err     error
}

// Main runs the tests and then stops the apiserver if any test started one.
// Use it from TestMain: os.Exit(kubetest.Main(m)). Starting lazily keeps the
// pure unit tests of a package free of the apiserver's start time.
func Main(m *testing.M) int {
	shared.mainRan = true
	code := m.Run()
	if shared.env != nil {
		shared.env.Stop()
	}
	return code
}

// Config returns the shared apiserver's config for t, starting the
// apiserver on the first call. Without the binaries the test is skipped, or
// fails when CAUSEWAY_REQUIRE_KUBE is set.
func Config(t testing.TB) *rest.Config {
	t.Helper()
	if !shared.mainRan {
		t.Fatal("kubetest.Config needs TestMain to call kubetest.Main, which stops the apiserver")
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.env, shared.err = Start(ctx)
		if shared.err == nil {
			fmt.Fprintf(os.Stderr, "kubetest: kube-apiserver %s ready in %v at %s\n", Version, shared.env.Ready.Round(time.Millisecond), shared.env.Config.Host)
		}
	})
	skipOrFail(t, shared.err)
	return rest.CopyConfig(shared.env.Config)
}

// StartOwn starts an apiserver of t's own, stopped when t ends, for tests
// that need a cluster to themselves (or a package without kubetest.Main).
// Without the binaries the test is skipped, or fails when
// CAUSEWAY_REQUIRE_KUBE is set.
func StartOwn(ctx context.Context, t testing.TB) *Env {
	t.Helper()
	env, err := Start(ctx)
	skipOrFail(t, err)
	t.Cleanup(env.Stop)
	return env
}

// skipOrFail ends t when the apiserver could not start: a failure when one
// is required, a skip otherwise.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("real kube-apiserver required (%s is set): %v", RequireEnv, err)
	}
	t.Skipf("no real kube-apiserver: %v", err)
}
