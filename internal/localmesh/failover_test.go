package localmesh

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/internal/proctest"
)

// westV2 and westV2Workload make the variant of examples/multicluster
// where west runs and exports bookstore-v2 too (bookthief is left out: not
// needed here).
const westV2 = `---
apiVersion: v1
kind: Service
metadata:
  name: bookstore-v2
  namespace: bookstore
  annotations: {causeway.dev/export: "true"}
spec:
  selector: {app: bookstore, version: v2}
  ports:
  - {name: http, port: 14001, targetPort: 14222, appProtocol: http}
`

const westV2Workload = `---
apiVersion: causeway.dev/v1alpha1
kind: Workload
metadata: {name: bookstore-v2, namespace: bookstore}
spec:
  serviceAccount: bookstore
  service: bookstore-v2
  port: 14222
  command: [causeway, demo-app, --name, bookstore-v2-west, --version, v2, --listen, "127.0.0.1:$(PORT)"]
`

// answer is one request of the probe loop: when, the status (0: the
// request itself failed) and which app answered.
type answer struct {
	at   time.Time
	code int
	name string
}

// prober sends GET target through bookbuyer's sidecar every 10 ms until
// stopped, recording every answer, as a west caller of bookstore-v2 would.
type prober struct {
	mu   sync.Mutex
	ans  []answer
	stop chan struct{}
	done chan struct{}
}

func startProber(proxyPort int, target string) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(proxyPort))
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	go func() {
		defer close(p.done)
		defer c.CloseIdleConnections()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			a := answer{at: time.Now()}
			if resp, err := c.Get(target); err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var d demoAnswer
				_ = json.Unmarshal(body, &d)
				a.code, a.name = resp.StatusCode, d.Name
			}
			p.mu.Lock()
			p.ans = append(p.ans, a)
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *prober) close() { close(p.stop); <-p.done }

// since returns the answers from t on.
func (p *prober) since(t time.Time) []answer {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, _ := slices.BinarySearchFunc(p.ans, t, func(a answer, t time.Time) int { return a.at.Compare(t) })
	return slices.Clone(p.ans[i:])
}

// waitRun waits until the last n answers since t all came from name with
// 200 and returns when the first of them was sent.
func (p *prober) waitRun(t *testing.T, since time.Time, name string, n int, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ans := p.since(since)
		run := 0
		for i := len(ans) - 1; i >= 0 && ans[i].code == http.StatusOK && ans[i].name == name; i-- {
			run++
		}
		if run >= n {
			return ans[len(ans)-run].at
		}
		if time.Now().After(deadline) {
			t.Fatalf("no run of %d answers from %s within %s; the last: %v", n, name, within, ans[max(0, len(ans)-5):])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tally counts the answers by app name, and those that were not 200.
func tally(ans []answer) (byName map[string]int, failed int) {
	byName = map[string]int{}
	for _, a := range ans {
		if a.code != http.StatusOK {
			failed++
			continue
		}
		byName[a.name]++
	}
	return byName, failed
}

var mcCluster = regexp.MustCompile(`^causeway up: cluster (\w+) from `)

// TestUpMulticlusterFailover runs a variant of examples/multicluster where
// both clusters run and export bookstore-v2: west's callers of bookstore-v2
// are served by west's own workload while it is healthy (priority 0); when
// its app is killed they are answered by east through east's gateway (the
// one name across clusters, priority 1); when the workload is back (the
// folder edited so it restarts) traffic returns to west; when the workload
// is removed from the folder, east answers again.
func TestUpMulticlusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two clusters")
	}
	bin, dir := multiclusterExample(t)
	if err := os.Remove(filepath.Join(dir, "west", "bookthief.yaml")); err != nil {
		t.Fatal(err)
	}
	westStore := filepath.Join(dir, "west", "bookstore.yaml")
	data, err := os.ReadFile(westStore)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(westStore, append(data, westV2+westV2Workload...), 0o644); err != nil {
		t.Fatal(err)
	}

	up := startUpProc(t, bin, dir)
	m, _ := up.WaitLine(t, 0, mcReady, 60*time.Second)
	if m[1] != "4" {
		t.Fatalf("ready with %s workloads, want 4 (west: bookbuyer, bookstore-v1, bookstore-v2; east: bookstore-v2)", m[1])
	}
	// The app PID of west's bookstore-v2: its row in west's summary.
	var appPID int
	cluster := ""
	for _, l := range up.Lines() {
		if cm := mcCluster.FindStringSubmatch(l); cm != nil {
			cluster = cm[1]
		}
		if rm := mcRow.FindStringSubmatch(l); rm != nil && cluster == "west" && rm[1] == "bookstore/bookstore-v2" {
			appPID, _ = strconv.Atoi(rm[4])
		}
	}
	if appPID == 0 {
		t.Fatal("no row for west's bookstore/bookstore-v2 in the summary")
	}
	rest := map[string]string{}
	for _, rm := range up.All(mcREST) {
		rest[rm[2]] = rm[1]
	}

	const buyer = 15201
	const target = "http://bookstore-v2.bookstore:14001/books-bought"
	p := startProber(buyer, target)
	defer p.close()
	began := time.Now()

	t.Run("healthy: west's callers are served in west", func(t *testing.T) {
		// Wait for the link (east's import) so failover has somewhere to go.
		for !slices.Contains(services(t, rest["west"]), "bookstore/bookstore-v2-east") {
			if time.Since(began) > 20*time.Second {
				t.Fatal("west does not import bookstore-v2-east within 20s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		from := p.waitRun(t, began, "bookstore-v2-west", 100, 20*time.Second)
		by, failed := tally(p.since(from))
		t.Logf("healthy: %v, %d failed", by, failed)
		if by["bookstore-v2-east"] != 0 || failed != 0 {
			t.Fatalf("healthy: answers %v, %d failed; want all from bookstore-v2-west", by, failed)
		}
	})

	killed := time.Now()
	t.Run("west's app killed: east answers", func(t *testing.T) {
		if err := syscall.Kill(appPID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill west's bookstore-v2 app (pid %d): %v", appPID, err)
		}
		p.waitRun(t, killed, "bookstore-v2-east", 100, 20*time.Second)
		ans := p.since(killed)
		by, failed := tally(ans)
		first := slices.IndexFunc(ans, func(a answer) bool { return a.name == "bookstore-v2-east" })
		t.Logf("after the kill: %d requests, %v, %d failed; first answer from east %s after the kill",
			len(ans), by, failed, ans[first].at.Sub(killed).Round(time.Millisecond))
		if failed != 0 {
			t.Errorf("%d requests failed while failing over, want 0 (retries absorb the local failures)", failed)
		}
		if n := metric(t, findAdmin(t, up, "west", "bookbuyer/bookbuyer"), `causeway_upstream_picks_total{cluster="bookstore/bookstore-v2:14001",priority="1"}`); n < 100 {
			t.Errorf("bookbuyer's sidecar counts %v picks at priority 1, want >= 100", n)
		}
	})

	t.Run("west's workload back: traffic returns to west", func(t *testing.T) {
		edited := time.Now()
		rewrite(t, westStore, "--name, bookstore-v2-west,", "--name, bookstore-v2-west-again,")
		from := p.waitRun(t, edited, "bookstore-v2-west-again", 100, 60*time.Second)
		by, failed := tally(p.since(edited))
		t.Logf("after the edit: traffic back in west %s after the edit (%v, %d failed)", from.Sub(edited).Round(time.Millisecond), by, failed)
		if failed != 0 {
			t.Errorf("%d requests failed while west came back, want 0", failed)
		}
	})

	t.Run("west's workload removed from the folder: east answers", func(t *testing.T) {
		edited := time.Now()
		rewrite(t, westStore, strings.Replace(westV2Workload, "bookstore-v2-west,", "bookstore-v2-west-again,", 1), "")
		from := p.waitRun(t, edited, "bookstore-v2-east", 100, 20*time.Second)
		by, failed := tally(p.since(edited))
		t.Logf("after the removal: all answers from east %s after the edit (%v, %d failed)", from.Sub(edited).Round(time.Millisecond), by, failed)
		if failed != 0 {
			t.Errorf("%d requests failed while west's workload went away, want 0", failed)
		}
	})
}

// findAdmin returns the sidecar admin address of workload key in cluster's
// summary.
func findAdmin(t *testing.T, up *proctest.Proc, cluster, key string) string {
	t.Helper()
	cur := ""
	for _, l := range up.Lines() {
		if cm := mcCluster.FindStringSubmatch(l); cm != nil {
			cur = cm[1]
		}
		if rm := mcRow.FindStringSubmatch(l); rm != nil && cur == cluster && rm[1] == key {
			return rm[2]
		}
	}
	t.Fatalf("no summary row for %s in %s", key, cluster)
	return ""
}
