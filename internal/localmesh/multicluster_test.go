package localmesh

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/proctest"
)

// waitFor bounds each wait for something `causeway up` does after a file
// edit or a push (a line printed, traffic moved, an import gone or back).
// Each takes well under a second alone, but CI runs every package's tests
// at once on two cores: the wait fails only when the event does not come.
const waitFor = 30 * time.Second

// startUpProc runs `causeway up` on dir.
func startUpProc(t *testing.T, bin, dir string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, 20*time.Second, bin, "up", "-f", dir, "--grace", "3s")
}

// copyTree copies the example folder, subfolders included.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rewrite replaces old with new in a file, as an editor saves: write
// beside, then rename, so the watcher sees one change.
func rewrite(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not contain %q", path, old)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type demoAnswer struct {
	Name    string      `json:"name"`
	Headers http.Header `json:"headers"`
}

// ask sends one request through a west workload's sidecar (its HTTP
// forward proxy, as the workload's own calls go).
func ask(t *testing.T, proxyPort int, target string) (int, demoAnswer, string) {
	t.Helper()
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(proxyPort))
	// A request errs at once when something is wrong; the timeout only
	// stops a hung one, with room for a CI machine under load.
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}}
	resp, err := c.Get(target)
	if err != nil {
		t.Fatalf("GET %s via :%d: %v", target, proxyPort, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var ans demoAnswer
	_ = json.Unmarshal(body, &ans) // a sidecar's own answer (403) is not JSON
	return resp.StatusCode, ans, string(body)
}

// metric sums the samples of a Prometheus text exposition whose line starts
// with prefix (a name and, optionally, the start of its labels).
func metric(t *testing.T, admin, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", admin, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, prefix) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

func services(t *testing.T, rest string) []string {
	t.Helper()
	resp, err := http.Get("http://" + rest + "/api/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Items []struct {
			Key struct{ Namespace, Name string } `json:"key"`
		} `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range body.Items {
		out = append(out, s.Key.Namespace+"/"+s.Key.Name)
	}
	return out
}

var (
	mcReady    = regexp.MustCompile(`^causeway up: ready: (\d+) workloads in 2 clusters \(east, west\), 1 link\(s\), in (\S+);`)
	mcREST     = regexp.MustCompile(`^  REST API\s+http://(\S+)\s+\(causeway stat --cluster (\w+)\)$`)
	mcGateway  = regexp.MustCompile(`^\[(\w+)\]   gateway\s+(\S+) \(SPIFFE ID (\S+), admin http://(\S+), pid (\d+)\)$`)
	mcRow      = regexp.MustCompile(`^  (\S+/\S+)\s+\S+\s+\S+\s+\S+\s+(\S+)\s.*\s(\d+),(\d+)$`)
	mcSock     = regexp.MustCompile(`^  Workload API\s+unix://(\S+)$`)
	mcBuyerRep = regexp.MustCompile(`^\[west/bookbuyer\] \S+ bookbuyer requests=(\d+) ok=(\d+) failed=(\d+) status\{[^}]*\} servers\{([^}]*)\} p50=(\S+) p99=(\S+)`)
)

// TestUpMulticluster runs the README's main command, `causeway up` on
// examples/multicluster, with the real binary and real processes on
// loopback: two clusters with their own trust domains, linked by
// federation; west's bookbuyer reaches east's exported bookstore-v2 through
// east's gateway with mTLS end to end (the app sees the west caller),
// west's bookthief gets 403 from east's sidecar, a split edit moves traffic
// across clusters, an invalid edit in east changes nothing, removing the
// export removes the import, and SIGINT leaves no child behind.
func TestUpMulticluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two clusters")
	}
	bin, dir := multiclusterExample(t)

	began := time.Now()
	up := startUpProc(t, bin, dir)
	m, next := up.WaitLine(t, 0, mcReady, 60*time.Second)
	startup := time.Since(began)
	t.Logf("ready %s after start (the run says %s): 2 clusters, 2 gateways, 4 workloads, linked", startup.Round(time.Millisecond), m[2])
	if m[1] != "4" {
		t.Fatalf("ready with %s workloads, want 4", m[1])
	}
	rest := map[string]string{}
	for _, rm := range up.All(mcREST) {
		rest[rm[2]] = rm[1]
	}
	gws := map[string][]string{} // cluster -> listen, id, admin, pid
	var pids []int
	for _, gm := range up.All(mcGateway) {
		gws[gm[1]] = gm[2:]
		p, _ := strconv.Atoi(gm[5])
		pids = append(pids, p)
	}
	admins := map[string]string{} // workload -> sidecar admin
	for _, rm := range up.All(mcRow) {
		admins[rm[1]] = rm[2]
		for _, s := range rm[3:] {
			p, _ := strconv.Atoi(s)
			pids = append(pids, p)
		}
	}
	var socks []string
	for _, sm := range up.All(mcSock) {
		socks = append(socks, sm[1])
	}
	if len(rest) != 2 || len(gws) != 2 || len(pids) != 10 || len(socks) != 2 {
		t.Fatalf("summary: REST %v, gateways %v, %d child PIDs (want 2 gateways + 4 sidecars + 4 apps), sockets %v", rest, gws, len(pids), socks)
	}
	if gws["east"][1] != "spiffe://east.causeway.local/ns/causeway-system/sa/causeway-gateway" {
		t.Fatalf("east gateway ID %s", gws["east"][1])
	}
	const buyer, thief = 15201, 15202
	const east = "http://bookstore-v2-east.bookstore:14001/books-bought"
	const root = "http://bookstore.bookstore:14001/books-bought"

	t.Run("west reaches east through east's gateway, end-to-end mTLS", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, ans, body := ask(t, buyer, east)
			if code == http.StatusOK {
				// The import became usable this long after the ready line.
				t.Logf("first answer from east %s after ready", time.Since(began.Add(startup)).Round(time.Millisecond))
				if ans.Name != "bookstore-v2-east" {
					t.Fatalf("answered by %q, want bookstore-v2-east", ans.Name)
				}
				xfcc := ans.Headers.Get("X-Forwarded-Client-Cert")
				re := regexp.MustCompile(`^By=spiffe://east\.causeway\.local/ns/bookstore/sa/bookstore;Hash=[0-9a-f]{64};URI=spiffe://west\.causeway\.local/ns/bookbuyer/sa/bookbuyer$`)
				if !re.MatchString(xfcc) {
					t.Fatalf("X-Forwarded-Client-Cert at east's bookstore = %q, want west's bookbuyer verified by east's sidecar", xfcc)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no 200 from east within 15s of ready; last %d %q", code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := metric(t, gws["east"][2], `causeway_gateway_connections_total{service="bookstore/bookstore-v2:14001"}`); n < 1 {
			t.Fatalf("east's gateway forwarded %v connections to bookstore-v2:14001, want some", n)
		}
		if n := metric(t, admins["bookstore/bookstore-v2"], `causeway_inbound_authorization_total{caller="spiffe://west.causeway.local/ns/bookbuyer/sa/bookbuyer",decision="allow"}`); n < 1 {
			t.Fatalf("east's bookstore sidecar allowed west's bookbuyer %v times, want some", n)
		}
	})
	t.Run("bookthief gets 403 from east's sidecar", func(t *testing.T) {
		// bookthief's sidecar gets the import in the same push as
		// bookbuyer's, but not at the same instant: until it has it, the
		// name does not route (no answer from east at all). A 200 is never
		// right.
		var (
			code int
			ans  demoAnswer
			body string
		)
		for deadline := time.Now().Add(waitFor); ; time.Sleep(50 * time.Millisecond) {
			code, ans, body = ask(t, thief, east)
			if code == http.StatusForbidden || code == http.StatusOK || time.Now().After(deadline) {
				break
			}
		}
		want := "causeway: forbidden: no TrafficTarget allows spiffe://west.causeway.local/ns/bookthief/sa/bookthief here"
		if code != http.StatusForbidden || ans.Name != "" || strings.TrimSpace(body) != want {
			t.Fatalf("bookthief: %d %q, want 403 %q", code, body, want)
		}
		if n := metric(t, admins["bookstore/bookstore-v2"], `causeway_inbound_authorization_total{caller="spiffe://west.causeway.local/ns/bookthief/sa/bookthief",decision="deny"}`); n < 1 {
			t.Fatalf("east's bookstore sidecar denied bookthief %v times, want some", n)
		}
	})
	t.Run("the load generator's traffic crosses clusters", func(t *testing.T) {
		i := next
		for {
			var rm []string
			rm, i = up.WaitLine(t, i, mcBuyerRep, waitFor)
			if !strings.Contains(rm[4], "bookstore-v2-east=") || rm[3] != "0" {
				continue // the first report may predate the import
			}
			t.Logf("bookbuyer load through the split: requests=%s ok=%s servers{%s} p50=%s p99=%s", rm[1], rm[2], rm[4], rm[5], rm[6])
			return
		}
	})
	t.Run("causeway stat --cluster west shows the import's traffic", func(t *testing.T) {
		// The SMI metrics come from the callers' sidecars: west's stat
		// shows west's calls to east, under the import's name.
		r := waitStat(t, bin, "west", "bookstore-v2-east", 15*time.Second)
		t.Logf("causeway stat --cluster west: bookstore-v2-east %.0f requests, p99 %.1fms", r.Requests, r.P99ms)
	})

	split := filepath.Join(dir, "west", "traffic-split.yaml")
	t.Run("a split edit moves traffic across clusters", func(t *testing.T) {
		for _, tc := range []struct{ from, to, want string }{
			{"{service: bookstore-v1, weight: 50}\n  - {service: bookstore-v2-east, weight: 50}", "{service: bookstore-v1, weight: 0}\n  - {service: bookstore-v2-east, weight: 100}", "bookstore-v2-east"},
			{"{service: bookstore-v1, weight: 0}\n  - {service: bookstore-v2-east, weight: 100}", "{service: bookstore-v1, weight: 100}\n  - {service: bookstore-v2-east, weight: 0}", "bookstore-v1-west"},
		} {
			start := time.Now()
			rewrite(t, split, tc.from, tc.to)
			run := 0
			for run < 20 {
				if time.Since(start) > waitFor {
					t.Fatalf("traffic did not move to %s within %s", tc.want, waitFor)
				}
				if code, ans, _ := ask(t, buyer, root); code == http.StatusOK && ans.Name == tc.want {
					run++
				} else {
					run = 0
					time.Sleep(10 * time.Millisecond)
				}
			}
			t.Logf("all traffic at %s %s after the write", tc.want, time.Since(start).Round(time.Millisecond))
		}
	})

	eastStore := filepath.Join(dir, "east", "bookstore.yaml")
	t.Run("an invalid edit in east is reported and changes nothing", func(t *testing.T) {
		from := up.Count()
		rewrite(t, eastStore, `causeway.dev/export: "true"`, `causeway.dev/export: "yes"`)
		up.WaitLine(t, from, regexp.MustCompile(`^\[east\] \S+ rejected: 1 error\(s\); nothing changed, still serving`), waitFor)
		up.WaitLine(t, from, regexp.MustCompile(`^\[east\]   \S*bookstore\.yaml:\d+: Service bookstore/bookstore-v2: metadata\.annotations\["causeway\.dev/export"\]: "yes": want "true" or "false"$`), waitFor)
		if !slices.Contains(services(t, rest["west"]), "bookstore/bookstore-v2-east") {
			t.Fatal("west lost its import after an invalid edit in east")
		}
		if code, _, _ := ask(t, buyer, east); code != http.StatusOK {
			t.Fatalf("after the invalid edit: %d, want 200 from east", code)
		}
		rewrite(t, eastStore, `causeway.dev/export: "yes"`, `causeway.dev/export: "true"`)
	})
	t.Run("removing the export removes the import", func(t *testing.T) {
		from := up.Count()
		start := time.Now()
		rewrite(t, eastStore, `  annotations: {causeway.dev/export: "true"}`+"\n", "")
		for slices.Contains(services(t, rest["west"]), "bookstore/bookstore-v2-east") {
			if time.Since(start) > waitFor {
				t.Fatalf("west still imports bookstore-v2-east %s after east stopped exporting it", waitFor)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("import gone from west's snapshot %s after the edit in east", time.Since(start).Round(time.Millisecond))
		up.WaitLine(t, from, regexp.MustCompile(`^\[west\] \S+ applied \S+: .*removed Service bookstore/bookstore-v2-east`), waitFor)
		// The split's backend is gone: all of bookstore goes to v1 (it
		// was 100/0 already); the import's own name no longer resolves
		// once bookbuyer's sidecar has the snapshot west's control plane
		// pushes after the one its REST API shows.
		for deadline := time.Now().Add(waitFor); ; time.Sleep(20 * time.Millisecond) {
			code, _, _ := ask(t, buyer, east)
			if code != http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bookstore-v2-east still answers %s after the import was removed", waitFor)
			}
		}
		start = time.Now()
		rewrite(t, eastStore, "  namespace: bookstore\n", "  namespace: bookstore\n  annotations: {causeway.dev/export: \"true\"}\n")
		for !slices.Contains(services(t, rest["west"]), "bookstore/bookstore-v2-east") {
			if time.Since(start) > waitFor {
				t.Fatalf("west does not import bookstore-v2-east again %s after east exports it again", waitFor)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("import back in west's snapshot %s after the edit in east", time.Since(start).Round(time.Millisecond))
	})

	t.Run("SIGINT stops every child of both clusters", func(t *testing.T) {
		if err := up.Cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-up.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("causeway up did not exit within 20s of SIGINT")
		}
		if code := up.Cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("child pid %d still exists after up exited (kill 0: %v)", pid, err)
			}
		}
		for _, s := range socks {
			// The run directory is the cluster folder's parent.
			if _, err := os.Stat(filepath.Dir(filepath.Dir(s))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("run directory of %s left behind (stat: %v)", s, err)
			}
		}
	})

	t.Run("a second up on the same folder works", func(t *testing.T) {
		up2 := startUpProc(t, bin, dir)
		up2.WaitLine(t, 0, mcReady, 60*time.Second)
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, ans, _ := ask(t, buyer, east)
			if code == http.StatusOK && ans.Name == "bookstore-v2-east" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("second run: no 200 from east within 15s: %d", code)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := up2.Cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case <-up2.Done():
		case <-time.After(20 * time.Second):
			t.Fatal("second causeway up did not exit within 20s of SIGINT")
		}
	})
}
