package localmesh

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// binary is the causeway binary the end-to-end tests run, built once per
// test binary into a directory TestMain removes.
var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// causewayBinary builds cmd/causeway once and returns its path.
func causewayBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		if binary.dir, binary.err = os.MkdirTemp("", "localmesh-bin-"); binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "causeway")
		binary.out, binary.err = exec.Command("go", "build", "-o", binary.path, "../../cmd/causeway").CombinedOutput()
	})
	if binary.err != nil {
		t.Fatalf("go build: %v\n%s", binary.err, binary.out)
	}
	return binary.path
}

// multiclusterExample copies examples/multicluster into a temporary folder
// with the APIs' and gateways' ports freed (0), so a `make run` left
// running does not collide with the test; the workloads' ports stay the
// example's (tests dial bookbuyer's and bookthief's proxies). It returns
// the binary and the folder.
func multiclusterExample(t *testing.T) (bin, dir string) {
	t.Helper()
	bin = causewayBinary(t)
	dir = filepath.Join(t.TempDir(), "multicluster")
	copyTree(t, filepath.Join("..", "..", "examples", "multicluster"), dir)
	for _, c := range []struct{ name, gw, admin string }{{"west", "15440", "15000"}, {"east", "15441", "15100"}} {
		f := filepath.Join(dir, c.name, "00-cluster.yaml")
		rewrite(t, f, "gatewayPort: "+c.gw, "gatewayPort: 0")
		rewrite(t, f, "adminPort: "+c.admin, "adminPort: 0")
	}
	return bin, dir
}

// statRow is one row of `causeway stat -o json`.
type statRow struct {
	Name        string  `json:"name"`
	Requests    float64 `json:"requests"`
	SuccessRate float64 `json:"successRate"`
	P99ms       float64 `json:"p99ms"`
}

// waitStat polls `causeway stat --cluster cluster -n bookstore` until the
// service name shows requests, and returns its row; none within `within`
// fails the test.
func waitStat(t *testing.T, bin, cluster, name string, within time.Duration) statRow {
	t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(300 * time.Millisecond) {
		out, err := exec.Command(bin, "stat", "--cluster", cluster, "-n", "bookstore", "-o", "json").Output()
		if err != nil {
			t.Fatalf("causeway stat --cluster %s: %v", cluster, err)
		}
		var rows []statRow
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("stat -o json: %v\n%s", err, out)
		}
		if i := slices.IndexFunc(rows, func(r statRow) bool { return r.Name == name && r.Requests > 0 }); i >= 0 {
			return rows[i]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no requests at %s in causeway stat --cluster %s within %s: %s", name, cluster, within, out)
		}
	}
}
