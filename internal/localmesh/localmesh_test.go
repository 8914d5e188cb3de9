package localmesh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/identity/attest"
	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/spec"
)

func TestExpand(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PORT": "14011", "UPSTREAM_MYSQL_DB_3306": "127.0.0.1:13306", "EMPTY": ""}
	tests := []struct{ in, want string }{
		{"127.0.0.1:$(PORT)", "127.0.0.1:14011"},
		{"$(UPSTREAM_MYSQL_DB_3306)", "127.0.0.1:13306"},
		{"$(UNKNOWN) stays", "$(UNKNOWN) stays"},
		{"$$(PORT) is escaped", "$(PORT) is escaped"},
		{"x$(EMPTY)y", "xy"},
		{"unclosed $(PORT", "unclosed $(PORT"},
		{"trailing $", "trailing $"},
		{"$PORT is not Kubernetes syntax", "$PORT is not Kubernetes syntax"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			if got := expand(tc.in, env); got != tc.want {
				t.Fatalf("expand(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestInstanceEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		w    local.Workload
		want map[string]string
	}{
		{
			name: "server with fixed upstream",
			w: local.Workload{Key: spec.Key{Namespace: "bookstore", Name: "v1"}, Port: 14011, Outbound: local.Outbound{
				Upstreams: []local.Upstream{{Service: spec.Key{Namespace: "db", Name: "my-sql"}, Port: 3306, LocalPort: 13306}}}},
			want: map[string]string{"CAUSEWAY_WORKLOAD": "bookstore/v1", "NO_PROXY": "", "no_proxy": "", "PORT": "14011",
				"UPSTREAM_MY_SQL_DB_3306": "127.0.0.1:13306"},
		},
		{
			name: "the workload's env comes last, expanded in order",
			w: local.Workload{Key: spec.Key{Namespace: "ns", Name: "w"}, Port: 8080, Env: []local.EnvVar{
				{Name: "LISTEN", Value: "127.0.0.1:$(PORT)"}, {Name: "URL", Value: "http://$(LISTEN)/"}, {Name: "NO_PROXY", Value: "example.org"}}},
			want: map[string]string{"CAUSEWAY_WORKLOAD": "ns/w", "NO_PROXY": "example.org", "no_proxy": "", "PORT": "8080",
				"LISTEN": "127.0.0.1:8080", "URL": "http://127.0.0.1:8080/"},
		},
		{
			name: "client behind the forward proxy",
			w:    local.Workload{Key: spec.Key{Namespace: "b", Name: "buyer"}, Outbound: local.Outbound{HTTPProxyPort: 15001}},
			want: map[string]string{"CAUSEWAY_WORKLOAD": "b/buyer", "NO_PROXY": "", "no_proxy": "",
				"HTTP_PROXY": "http://127.0.0.1:15001", "http_proxy": "http://127.0.0.1:15001"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := (&instance{w: tc.w}).env()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("env = %v\nwant  %v", got, tc.want)
			}
		})
	}
}

func TestDescribeChanges(t *testing.T) {
	t.Parallel()
	svc := func(name string, eps ...int32) spec.Service {
		s := spec.Service{Key: spec.Key{Namespace: "ns", Name: name}, Ports: []spec.Port{{Port: 80, Protocol: spec.ProtocolHTTP}}}
		for _, p := range eps {
			s.Endpoints = append(s.Endpoints, spec.Endpoint{Addr: "127.0.0.1", Port: p, Ready: true})
		}
		return s
	}
	split := func(w1, w2 int64) spec.Split {
		return spec.Split{Key: spec.Key{Namespace: "ns", Name: "split"}, Root: spec.Key{Namespace: "ns", Name: "root"},
			Backends: []spec.Backend{{Service: spec.Key{Namespace: "ns", Name: "v1"}, Weight: w1}, {Service: spec.Key{Namespace: "ns", Name: "v2"}, Weight: w2}}}
	}
	base := &spec.Snapshot{Mode: spec.ModeStrict, Services: []spec.Service{svc("a", 1), svc("b")}, Splits: []spec.Split{split(90000, 10000)}}
	moved := *base
	moved.Services = []spec.Service{svc("a", 1), svc("b")}
	moved.Services[0].Origin = spec.Origin{Source: spec.Source{File: "other.yaml", Line: 40}}
	tests := []struct {
		name     string
		old, cur *spec.Snapshot
		want     []string
	}{
		{"first snapshot", nil, base, nil},
		{"same content, other place in the files", base, &moved, nil},
		{"split weights are spelt out", base, &spec.Snapshot{Mode: spec.ModeStrict, Services: base.Services, Splits: []spec.Split{split(100000, 0)}},
			[]string{"changed TrafficSplit ns/split (v1=100 v2=0)"}},
		{"services and mode", base, &spec.Snapshot{Mode: spec.ModePermissive, Services: []spec.Service{svc("a", 2), svc("c")}, Splits: base.Splits},
			[]string{"mode strict -> permissive", "added Service ns/c", "changed Service ns/a", "removed Service ns/b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := describeChanges(tc.old, tc.cur); !slices.Equal(got, tc.want) {
				t.Fatalf("changes = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPIDAttestor(t *testing.T) {
	t.Parallel()
	a := newPIDAttestor()
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/bookstore/sa/bookstore")
	a.add(4242, id)
	tests := []struct {
		name   string
		caller attest.Caller
		want   spiffeid.ID
	}{
		{"registered child", attest.Caller{PID: 4242, UID: 1000}, id},
		{"same uid, other pid", attest.Caller{PID: 4243, UID: 1000}, spiffeid.ID{}},
		{"registered pid, but the process that connected is gone", attest.Caller{PID: 4242, Alive: func() bool { return false }}, spiffeid.ID{}},
		{"registered pid, still alive", attest.Caller{PID: 4242, Alive: func() bool { return true }}, id},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Attest(context.Background(), tc.caller)
			if tc.want.IsZero() {
				if !errors.Is(err, attest.ErrNoIdentity) {
					t.Fatalf("err = %v, want ErrNoIdentity", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Attest = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	a.remove(4242)
	if _, err := a.Attest(context.Background(), attest.Caller{PID: 4242}); !errors.Is(err, attest.ErrNoIdentity) {
		t.Fatalf("after remove: err = %v, want ErrNoIdentity", err)
	}
}

func TestPrefixWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	var mu sync.Mutex
	a := &prefixWriter{mu: &mu, out: &out, prefix: "[a] "}
	b := &prefixWriter{mu: &mu, out: &out, prefix: "[b] "}
	for _, w := range []struct {
		pw *prefixWriter
		s  string
	}{{a, "one "}, {b, "two\nthr"}, {a, "line\n"}, {b, "ee\n"}} {
		if _, err := w.pw.Write([]byte(w.s)); err != nil {
			t.Fatal(err)
		}
	}
	want := "[b] two\n[a] one line\n[b] three\n"
	if out.String() != want {
		t.Fatalf("output %q, want %q", out.String(), want)
	}
}

func copyExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "bookstore", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("example files: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoad: the folder's Loader gives each Workload's Service the sidecar's
// endpoint and identity, keeps a workload's inbound port across reloads,
// and reports a Workload whose Service is missing on the Workload.
func TestLoad(t *testing.T) {
	t.Parallel()
	dir := copyExample(t)
	m := &cluster{m: &Mesh{ports: newPortBook()}, td: spiffeid.RequireTrustDomainFromString("cluster.local"), dir: dir}
	snap, diags, err := m.load(dir)
	if err != nil || diags.HasErrors() {
		t.Fatalf("load: %v %v", err, diags)
	}
	if m.pending == nil || len(m.pending.Workloads) != 6 {
		t.Fatalf("pending = %+v, want 6 workloads", m.pending)
	}
	v1 := snap.Service(spec.Key{Namespace: "bookstore", Name: "bookstore-v1"})
	id := spiffeid.RequireFromString("spiffe://cluster.local/ns/bookstore/sa/bookstore")
	if v1 == nil || len(v1.Endpoints) != 1 || v1.Endpoints[0].ServicePort != 14001 || v1.Endpoints[0].Identity != id ||
		!slices.Equal(v1.Identities, []spiffeid.ID{id}) {
		t.Fatalf("bookstore-v1 = %+v", v1)
	}
	port := v1.Endpoints[0].Port
	snap2, _, err := m.load(dir)
	if err != nil || snap2.Version != snap.Version {
		t.Fatalf("second load: version %s -> %s (%v): the inbound port must not move", snap.Version, snap2.Version, err)
	}
	if p := snap2.Service(v1.Key).Endpoints[0].Port; p != port {
		t.Fatalf("inbound port moved %d -> %d", port, p)
	}

	bad := filepath.Join(dir, "extra.yaml")
	if err := os.WriteFile(bad, []byte(`apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: ghost, namespace: bookstore}
spec: {serviceAccount: bookstore, service: nowhere, port: 14999}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, diags, err = m.load(dir)
	want := bad + ":1: Workload bookstore/ghost: spec.service: Service bookstore/nowhere is not among the inputs"
	if err != nil || !slices.ContainsFunc(diags.Errors(), func(d spec.Diagnostic) bool { return d.String() == want }) {
		t.Fatalf("diagnostics %v, want %q", diags, want)
	}
}

// TestChildStop: stop ends the child's whole process group, grandchildren
// included.
func TestChildStop(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	c, err := startChild("sleeper", []string{"/bin/sh", "-c", "sleep 60 & echo $!; wait"}, os.Environ(), "", &out, nil)
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	deadline := time.Now().Add(5 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		grandchild, _ = strconv.Atoi(strings.TrimSpace(out.String()))
		time.Sleep(10 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatalf("no grandchild pid in %q", out.String())
	}
	start := time.Now()
	c.stop(5 * time.Second)
	if !c.exited() {
		t.Fatal("child not reaped after stop")
	}
	// The grandchild was sleep's, reparented to init once sh died; the
	// group kill must still have reached it. Wait for init to reap it.
	for time.Since(start) < 5*time.Second {
		if err := syscall.Kill(grandchild, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("grandchild %d survived the stop", grandchild)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var reportRE = regexp.MustCompile(`requests=(\d+) ok=(\d+) failed=(\d+)(?: skipped=\d+)? status\{([^}]*)\}(?: servers\{([^}]*)\})?`)

// TestRunLoad runs the load generator against a real demo-app on loopback,
// over HTTP (every 4th request failing) and TCP echo.
func TestRunLoad(t *testing.T) {
	t.Parallel()
	app, err := demoapp.Start(t.Context(), demoapp.Options{Name: "shop", Listen: "127.0.0.1:0", TCPEcho: "127.0.0.1:0", FailEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		opts  LoadOptions
		check func(t *testing.T, req, ok, failed int, status, servers string)
	}{
		{
			name: "http",
			opts: LoadOptions{URL: "http://" + app.HTTPAddr.String() + "/books"},
			check: func(t *testing.T, req, ok, failed int, status, servers string) {
				// FailEvery 4: exactly a quarter of what the app saw failed;
				// the run's tally may end between two failures.
				if failed < req/4-1 || failed > req/4+1 || ok+failed != req {
					t.Errorf("requests=%d ok=%d failed=%d, want a quarter failed", req, ok, failed)
				}
				if !strings.Contains(status, "503=") || !strings.Contains(servers, "shop=") {
					t.Errorf("status{%s} servers{%s}", status, servers)
				}
			},
		},
		{
			name: "tcp",
			opts: LoadOptions{TCP: app.TCPAddr.String()},
			check: func(t *testing.T, req, ok, failed int, status, servers string) {
				if failed != 0 || ok != req || status != "ok="+strconv.Itoa(req) {
					t.Errorf("requests=%d ok=%d failed=%d status{%s}", req, ok, failed, status)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			o := tc.opts
			o.Rate, o.ReportEvery, o.Name, o.Out = 200, 100*time.Millisecond, tc.name, &out
			ctx, cancel := context.WithTimeout(t.Context(), 550*time.Millisecond)
			defer cancel()
			if err := RunLoad(ctx, o); err != nil {
				t.Fatal(err)
			}
			var req, ok, failed int
			var status, servers []string
			sc := bufio.NewScanner(strings.NewReader(out.String()))
			for sc.Scan() {
				m := reportRE.FindStringSubmatch(sc.Text())
				if m == nil {
					t.Fatalf("report line %q", sc.Text())
				}
				r, _ := strconv.Atoi(m[1])
				k, _ := strconv.Atoi(m[2])
				f, _ := strconv.Atoi(m[3])
				req, ok, failed = req+r, ok+k, failed+f
				status, servers = append(status, m[4]), append(servers, m[5])
			}
			if req < 20 {
				t.Fatalf("only %d requests reported:\n%s", req, out.String())
			}
			// Sum the per-line status counts into one for the check.
			tc.check(t, req, ok, failed, sumCounts(status), sumCounts(servers))
		})
	}
}

func sumCounts(parts []string) string {
	tot := map[string]int{}
	for _, p := range parts {
		for _, kv := range strings.Split(p, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				n, _ := strconv.Atoi(v)
				tot[k] += n
			}
		}
	}
	return joinCounts(tot)
}

// TestRemoveStaleRunDirs: a run directory whose up.pid names a dead process
// is removed; a live run's and anything without up.pid are left alone.
func TestRemoveStaleRunDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{ // dir -> up.pid ("" = none)
		runDirPrefix + "dead":  strconv.Itoa(dead.Process.Pid),
		runDirPrefix + "alive": strconv.Itoa(os.Getpid()),
		runDirPrefix + "nopid": "",
	}
	for d, pid := range dirs {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if pid != "" {
			if err := os.WriteFile(filepath.Join(tmp, d, "up.pid"), []byte(pid), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	removeStaleRunDirs(slog.New(slog.DiscardHandler))
	for d := range dirs {
		_, err := os.Stat(filepath.Join(tmp, d))
		if gone := errors.Is(err, os.ErrNotExist); gone != (d == runDirPrefix+"dead") {
			t.Errorf("%s: gone=%v", d, gone)
		}
	}
}
