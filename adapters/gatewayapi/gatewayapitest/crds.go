package gatewayapitest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/internal/kubetest"
)

// Pinned sources of the target projects' CRDs, fetched with `go mod
// download` through the module proxy into the module cache (checksummed
// against sum.golang.org), so the schemas the tests check against are
// exactly these releases.
const (
	GatewayAPIModule = "sigs.k8s.io/gateway-api@v1.3.0"
	IstioAPIModule   = "istio.io/api@v1.27.3"
)

// ModuleDir downloads a module@version and returns its directory in the
// module cache. Without network the test is skipped, or fails when
// CAUSEWAY_REQUIRE_KUBE is set (CI), since the dry-run tests depend on it.
func ModuleDir(t testing.TB, modVersion string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", modVersion)
	// Outside the repository's module, so its go.mod is neither read nor
	// changed.
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if err == nil {
		err = json.Unmarshal(out, &info)
	}
	if err != nil || info.Dir == "" {
		msg := info.Error
		if ee, ok := err.(*exec.ExitError); ok {
			msg += string(ee.Stderr)
		}
		if os.Getenv(kubetest.RequireEnv) != "" {
			t.Fatalf("go mod download %s: %v %s", modVersion, err, msg)
		}
		t.Skipf("go mod download %s: %v %s", modVersion, err, msg)
	}
	return info.Dir
}

// Files returns the files of dir matching a glob pattern, sorted.
func Files(t testing.TB, dir, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s in %s: %v", pattern, dir, err)
	}
	sort.Strings(files)
	return files
}

// DryRun installs the CRDs on the shared apiserver of the test binary
// (kubetest.Main must run in TestMain), creates the namespaces the objects
// live in (and applies any Namespace among them for real), then sends every
// other object with server-side apply and dry-run: the apiserver's OpenAPI
// schema, CEL rules and strict field validation all run, nothing is
// stored. Each rejection fails a subtest named after the object.
func DryRun(t *testing.T, crds []string, cases map[string][]*unstructured.Unstructured) {
	t.Helper()
	cfg := kubetest.Config(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kubetest.InstallCRDs(ctx, cfg, crds...); err != nil {
		t.Fatal(err)
	}
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	checked := 0
	for _, name := range names {
		objs := cases[name]
		t.Run(name, func(t *testing.T) {
			made := map[string]bool{}
			for _, o := range objs {
				ns := o.GetNamespace()
				if o.GetKind() == "Namespace" {
					ns = o.GetName()
				}
				if ns == "" || made[ns] {
					continue
				}
				made[ns] = true
				nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
				if _, err := a.Apply(ctx, nsObj, false); err != nil {
					t.Fatalf("namespace %s: %v", ns, err)
				}
			}
			for _, o := range objs {
				if _, err := a.Apply(ctx, o.DeepCopy(), true); err != nil {
					t.Errorf("%s %s/%s rejected: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
				checked++
			}
		})
	}
	t.Logf("%d objects sent with server-side dry-run", checked)
}

// MustReject sends objects the installed schemas must refuse, with
// server-side dry-run, and fails for each one the apiserver accepts: it
// proves the dry-run checks run against the real schemas, so acceptance
// means something.
func MustReject(t *testing.T, objs ...*unstructured.Unstructured) {
	t.Helper()
	cfg := kubetest.Config(t)
	a, err := kubetest.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range objs {
		if _, err := a.Apply(ctx, o, true); err == nil {
			t.Errorf("%s %s/%s was accepted; the schema should refuse it", o.GetKind(), o.GetNamespace(), o.GetName())
		} else {
			t.Logf("%s %s refused as expected: %v", o.GetKind(), o.GetName(), err)
		}
	}
}
