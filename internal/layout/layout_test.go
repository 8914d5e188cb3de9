// Package layout holds the test that keeps DESIGN.md §1's dependency rules.
package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/causeway-mesh/causeway"

type pkg struct {
	ImportPath string
	Deps       []string
}

// listDeps runs `go list -deps -json` on patterns and returns every package in
// the module with its transitive dependencies.
func listDeps(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	args := append([]string{"list", "-json=ImportPath,Deps", "-test=false"}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

type rule struct {
	from      string   // package path prefix inside the module
	forbidden []string // import path prefixes it must not reach
	why       string
}

var rules = []rule{
	{"spec", []string{"k8s.io/", "sigs.k8s.io/", "github.com/servicemeshinterface/", "google.golang.org/grpc", module + "/"},
		"spec/ is the quiet centre: standard library and spiffeid only"},
	{"proxy", []string{"k8s.io/client-go", module + "/adapters"}, "proxy/ consumes compiled config only"},
	{"gateway", []string{"k8s.io/client-go", module + "/adapters"}, "gateway/ consumes compiled config only"},
}

// violations lists the dependencies of p that rule r forbids. A package's own
// subtree (spec/... importing spec/...) is always allowed.
func violations(p pkg, r rule) []string {
	var out []string
	for _, d := range p.Deps {
		if strings.HasPrefix(d, module+"/"+r.from) {
			continue
		}
		for _, f := range r.forbidden {
			if strings.HasPrefix(d, f) {
				out = append(out, d)
			}
		}
	}
	return out
}

// TestLayout checks the dependency rules of DESIGN.md §1 on the real import
// graph, so a violating import fails CI instead of slipping in.
func TestLayout(t *testing.T) {
	pkgs := listDeps(t, module+"/...")
	checked := map[string]int{}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		if rel == p.ImportPath {
			continue
		}
		for _, r := range rules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			checked[r.from]++
			for _, d := range violations(p, r) {
				t.Errorf("%s imports %s: %s", p.ImportPath, d, r.why)
			}
		}
		// Nothing imports cmd/.
		for _, d := range p.Deps {
			if strings.HasPrefix(d, module+"/cmd/") && !strings.HasPrefix(rel, "cmd/") {
				t.Errorf("%s imports %s: nothing may import cmd/", p.ImportPath, d)
			}
		}
	}
	if checked["spec"] == 0 {
		t.Fatalf("no spec package found; the rules checked nothing")
	}
}

// TestLayoutRuleCatches proves the checker fails on a violation: spec's
// dependency list, extended with a forbidden import, must be flagged.
func TestLayoutRuleCatches(t *testing.T) {
	bad := pkg{ImportPath: module + "/spec", Deps: []string{"fmt", module + "/spec/x", "k8s.io/apimachinery/pkg/runtime", module + "/adapters"}}
	got := violations(bad, rules[0])
	if len(got) != 2 || got[0] != "k8s.io/apimachinery/pkg/runtime" || got[1] != module+"/adapters" {
		t.Fatalf("violations = %v, want the k8s.io and adapters imports", got)
	}
}
