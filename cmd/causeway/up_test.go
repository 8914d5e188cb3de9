package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/proctest"
)

// TestExampleBookstoreValidates: the README's example folder is valid
// Kubernetes + SMI + Causeway YAML, every document read by a translator.
func TestExampleBookstoreValidates(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runIO([]string{"validate", "-f", filepath.Join("..", "..", "examples", "bookstore")}, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("validate exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "(0 warnings, 0 objects ignored)") {
		t.Fatalf("validate output %q: want no warnings and no ignored objects", out.String())
	}
}

// startUp runs `causeway up` on dir with a REST API on a free port.
func startUp(t *testing.T, bin, dir string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, 15*time.Second, bin, "up", "-f", dir, "--rest", "127.0.0.1:0", "--grace", "3s")
}

// demoAsk asks the bookstore through a workload's sidecar (its HTTP forward
// proxy, as the workload's own calls go) and returns the status and, when
// a demo-app answered, its answer: its name and the headers it received.
func demoAsk(t *testing.T, proxyPort int) (int, demoAnswer) {
	t.Helper()
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(proxyPort))
	// A request errs at once when something is wrong; the timeout only
	// stops a hung one, with room for a CI machine under load.
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	resp, err := c.Get("http://bookstore.bookstore:14001/books-bought")
	if err != nil {
		t.Fatalf("GET via :%d: %v", proxyPort, err)
	}
	defer resp.Body.Close()
	var ans demoAnswer
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &ans) // a sidecar's own answer (403) is not JSON
	return resp.StatusCode, ans
}

type demoAnswer struct {
	Name    string      `json:"name"`
	Headers http.Header `json:"headers"`
}

func demoGet(t *testing.T, proxyPort int) (int, string) {
	t.Helper()
	code, ans := demoAsk(t, proxyPort)
	return code, ans.Name
}

// Bounds of the waits below. Each event takes a fraction of a second (a
// split edit moves traffic in about 0.12 s), but CI runs every package's
// tests at once on two cores: a wait fails only when the event does not
// come at all, and a split edit must still move traffic well within
// moveWithin (the time taken is logged).
const (
	waitLine   = 30 * time.Second
	moveWithin = 10 * time.Second
)

// backendsWithin sends requests through bookbuyer's sidecar until n in a
// row are answered by want, and returns how long that took.
func backendsWithin(t *testing.T, want string, n int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	run := 0
	for time.Since(start) < limit {
		code, name := demoGet(t, 15001)
		if code == http.StatusOK && name == want {
			run++
			if run == n {
				return time.Since(start)
			}
			continue
		}
		run = 0
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("traffic did not move to %s within %s", want, limit)
	return 0
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// Write then rename, as editors do: the watcher must see one change.
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

const splitYAML = `apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: bookstore-split, namespace: bookstore}
spec:
  service: bookstore
  backends:
  - {service: bookstore-v1, weight: %s}
  - {service: bookstore-v2, weight: %s}
`

var (
	readyLine  = regexp.MustCompile(`^causeway up: ready: (\d+) workloads`)
	pidsLine   = regexp.MustCompile(`^  (\S+/\S+)\s.*\s(\d+),(\d+)$`)
	reportLine = regexp.MustCompile(`^\[(bookbuyer|bookthief|bookwarehouse)\] \S+ \S+ requests=(\d+) ok=(\d+) failed=(\d+) status\{([^}]*)\}`)
)

// TestUpBookstore runs the README's main command on a copy of
// examples/bookstore, with real processes on loopback: traffic flows through
// the sidecars under mTLS, the access policy lets bookbuyer in and keeps
// bookthief out, a TrafficSplit edit moves traffic (within 10 s; about 0.1 s
// alone), an invalid
// edit is reported and changes nothing, Ctrl-C ends every child, and a
// second `up` on the same folder starts cleanly.
func TestUpBookstore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a whole mesh")
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "causeway")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := filepath.Join(tmp, "bookstore")
	copyDir(t, filepath.Join("..", "..", "examples", "bookstore"), dir)

	began := time.Now()
	up := startUp(t, bin, dir)
	m, next := up.WaitLine(t, 0, readyLine, 30*time.Second)
	t.Logf("ready %s after start", time.Since(began).Round(time.Millisecond))
	if m[1] != "6" {
		t.Fatalf("ready with %s workloads, want 6", m[1])
	}
	// Every child PID, from the summary table (sidecar, app).
	var pids []int
	for _, l := range up.Lines()[:next] {
		if pm := pidsLine.FindStringSubmatch(l); pm != nil {
			for _, s := range pm[2:] {
				p, _ := strconv.Atoi(s)
				pids = append(pids, p)
			}
		}
	}
	sm, _ := up.WaitLine(t, 0, regexp.MustCompile(`^  Workload API\s+unix://(\S+)$`), waitLine)
	sock := sm[1]
	if len(pids) != 12 {
		t.Fatalf("found %d child PIDs in the summary, want 12 (6 sidecars, 6 apps)", len(pids))
	}

	t.Run("workloads report traffic through their sidecars", func(t *testing.T) {
		seen := map[string]bool{}
		i := next
		for len(seen) < 3 {
			var rm []string
			rm, i = up.WaitLine(t, i, reportLine, 10*time.Second)
			who, req, ok, failed, status := rm[1], rm[2], rm[3], rm[4], rm[5]
			if req == "0" {
				continue
			}
			switch who {
			case "bookbuyer", "bookwarehouse":
				if failed != "0" || ok != req {
					t.Errorf("%s: %s", who, rm[0])
				}
			case "bookthief":
				if ok != "0" || !strings.HasPrefix(status, "403=") || strings.Contains(status, ",") {
					t.Errorf("bookthief is not kept out with 403: %s", rm[0])
				}
			}
			seen[who] = true
		}
	})
	rm, _ := up.WaitLine(t, 0, regexp.MustCompile(`^  REST API\s+http://(\S+)`), waitLine)
	t.Run("causeway stat shows the live traffic", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := exec.Command(bin, "stat", "--api", rm[1], "-n", "bookstore", "-o", "json").Output()
			if err != nil {
				t.Fatalf("causeway stat: %v", err)
			}
			var rows []statRow
			if err := json.Unmarshal(out, &rows); err != nil {
				t.Fatalf("causeway stat -o json: %v\n%s", err, out)
			}
			var v1 *statRow
			for i := range rows {
				if rows[i].Name == "bookstore-v1" {
					v1 = &rows[i]
				}
			}
			if v1 != nil && v1.Requests > 0 && v1.RPS > 1 && v1.SuccessRate != nil && *v1.SuccessRate == 1 && v1.P99ms > 0 {
				t.Logf("bookstore-v1: %.0f requests, %.1f rps, p50 %.2fms p99 %.2fms", v1.Requests, v1.RPS, v1.P50ms, v1.P99ms)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no traffic at bookstore-v1 in causeway stat within 10s: %s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	t.Run("causeway tap streams live requests with verified callers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "tap", "--api", rm[1], "--from", "bookthief/bookthief", "-n", "2", "-o", "json").Output()
		if err != nil {
			t.Fatalf("causeway tap: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 2 {
			t.Fatalf("want 2 events, got %d:\n%s", len(lines), out)
		}
		for _, l := range lines {
			var ev struct {
				Node, Direction, Caller string
				Status                  int
			}
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("tap event %q: %v", l, err)
			}
			// bookthief is denied at the bookstore's sidecar: the events are
			// the inbound 403s, with the caller's verified identity.
			if ev.Direction != "inbound" || ev.Status != 403 || ev.Caller != "spiffe://cluster.local/ns/bookthief/sa/bookthief" {
				t.Errorf("event %s: want an inbound 403 from bookthief", l)
			}
		}
	})
	t.Run("every sidecar is connected over mTLS and in sync", func(t *testing.T) {
		resp, err := http.Get("http://" + rm[1] + "/api/v1/proxies")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Items []struct {
				Node struct {
					ID       string `json:"id"`
					Identity string `json:"identity"`
				} `json:"node"`
				Connected bool `json:"connected"`
				InSync    bool `json:"inSync"`
			} `json:"items"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		if len(body.Items) != 6 {
			t.Fatalf("%d proxies, want 6: %+v", len(body.Items), body.Items)
		}
		for _, p := range body.Items {
			// The identity is the one the sidecar's client SVID proves
			// (the control plane takes it from the certificate).
			ns, sa, _ := strings.Cut(strings.TrimPrefix(p.Node.Identity, "spiffe://cluster.local/ns/"), "/sa/")
			if !p.Connected || !p.InSync || !strings.HasSuffix(p.Node.ID, "."+ns) || sa == "" {
				t.Errorf("proxy %+v: want connected, in sync, with its workload's identity", p)
			}
		}
	})
	t.Run("access policy at the bookstore's sidecar", func(t *testing.T) {
		if code, name := demoGet(t, 15001); code != http.StatusOK || !strings.HasPrefix(name, "bookstore-v") {
			t.Fatalf("bookbuyer: %d from %q, want 200 from a bookstore", code, name)
		}
		// The bookstore saw the caller its sidecar verified over mTLS.
		_, ans := demoAsk(t, 15001)
		xfcc := ans.Headers.Get("X-Forwarded-Client-Cert")
		if !regexp.MustCompile(`^By=spiffe://cluster\.local/ns/bookstore/sa/bookstore;Hash=[0-9a-f]{64};URI=spiffe://cluster\.local/ns/bookbuyer/sa/bookbuyer$`).MatchString(xfcc) {
			t.Fatalf("X-Forwarded-Client-Cert at the bookstore = %q, want bookbuyer's verified identity", xfcc)
		}
		if code, name := demoGet(t, 15002); code != http.StatusForbidden || name != "" {
			t.Fatalf("bookthief: %d from %q, want 403 from the sidecar", code, name)
		}
	})

	split := filepath.Join(dir, "traffic-split.yaml")
	t.Run("split edits move traffic within 10s", func(t *testing.T) {
		for _, tc := range []struct{ v1, v2, want string }{{"0", "100", "bookstore-v2"}, {"100", "0", "bookstore-v1"}} {
			writeFile(t, split, fmt.Sprintf(splitYAML, tc.v1, tc.v2))
			took := backendsWithin(t, tc.want, 20, moveWithin)
			t.Logf("v1=%s v2=%s: all traffic at %s %s after the write", tc.v1, tc.v2, tc.want, took.Round(time.Millisecond))
			up.WaitLine(t, next, regexp.MustCompile(`applied \S+: changed TrafficSplit bookstore/bookstore-split \(bookstore-v1=`+tc.v1+` bookstore-v2=`+tc.v2+`\)`), waitLine)
		}
	})
	t.Run("an invalid edit is reported and changes nothing", func(t *testing.T) {
		from := up.Count()
		writeFile(t, split, fmt.Sprintf(splitYAML, "-5", "100"))
		up.WaitLine(t, from, regexp.MustCompile(`rejected: \d+ error\(s\); nothing changed, still serving`), waitLine)
		up.WaitLine(t, from, regexp.MustCompile(`^  \S*traffic-split\.yaml:\d+: TrafficSplit bookstore/bookstore-split: spec\.backends\[0\]\.weight: must be >= 0, got -5$`), waitLine)
		for range 20 {
			if code, name := demoGet(t, 15001); code != http.StatusOK || name != "bookstore-v1" {
				t.Fatalf("after the invalid edit: %d from %q, want 200 from bookstore-v1 (the last good split, 100/0)", code, name)
			}
		}
	})

	t.Run("workloads come and go with their files", func(t *testing.T) {
		from := up.Count()
		var thief []int
		for _, l := range up.Lines() {
			if pm := pidsLine.FindStringSubmatch(l); pm != nil && pm[1] == "bookthief/bookthief" {
				for _, s := range pm[2:] {
					p, _ := strconv.Atoi(s)
					thief = append(thief, p)
				}
			}
		}
		// The folder is valid again (the split as it was), without bookthief.
		writeFile(t, split, fmt.Sprintf(splitYAML, "100", "0"))
		if err := os.Remove(filepath.Join(dir, "bookthief.yaml")); err != nil {
			t.Fatal(err)
		}
		up.WaitLine(t, from, regexp.MustCompile(`workload bookthief/bookthief removed: stopping it`), waitLine)
		for _, pid := range thief {
			deadline := time.Now().Add(waitLine)
			for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("bookthief pid %d still exists after its file was removed", pid)
			}
		}
		writeFile(t, filepath.Join(dir, "bookbuyer2.yaml"), `apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: bookbuyer2, namespace: bookbuyer}
spec:
  serviceAccount: bookbuyer
  outbound: {httpProxyPort: 15003}
  command: [causeway, load, --url, "http://bookstore.bookstore:14001/books-bought", --rate, "20", --name, bookbuyer2, --report-every, 500ms]
`)
		sm, _ := up.WaitLine(t, from, regexp.MustCompile(`workload bookbuyer/bookbuyer2 started: sidecar pid (\d+) .*, app pid (\d+)$`), waitLine)
		for _, s := range sm[1:] {
			p, _ := strconv.Atoi(s)
			pids = append(pids, p)
		}
		rep, _ := up.WaitLine(t, from, regexp.MustCompile(`^\[bookbuyer2\] \S+ bookbuyer2 requests=([1-9]\d*) ok=(\d+) failed=0 `), waitLine)
		if rep[1] != rep[2] {
			t.Fatalf("bookbuyer2: %s", rep[0])
		}
	})

	t.Run("SIGINT stops every child", func(t *testing.T) {
		if err := up.Cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-up.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("causeway up did not exit within 15s of SIGINT")
		}
		if code := up.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Workload API socket %s left behind (stat: %v)", sock, err)
		}
		if _, err := os.Stat(filepath.Dir(sock)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run directory %s left behind (stat: %v)", filepath.Dir(sock), err)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("child pid %d still exists after up exited (kill 0: %v)", pid, err)
			}
		}
	})

	t.Run("a second up on the same folder works", func(t *testing.T) {
		// Valid again, so the second run starts serving at once.
		writeFile(t, split, fmt.Sprintf(splitYAML, "50", "50"))
		up2 := startUp(t, bin, dir)
		up2.WaitLine(t, 0, readyLine, 30*time.Second)
		if code, name := demoGet(t, 15001); code != http.StatusOK || !strings.HasPrefix(name, "bookstore-v") {
			t.Fatalf("second run, bookbuyer: %d from %q", code, name)
		}
		if err := up2.Cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-up2.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("second causeway up did not exit within 15s of SIGINT")
		}
	})
}
