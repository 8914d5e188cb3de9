package gatewayapitest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/spec"
)

// Update rewrites golden files instead of comparing with them.
var Update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// Case is one example manifest set built into a snapshot.
type Case struct {
	Name     string
	Root     string // the directory read, stripped from file names in reports
	Snapshot *spec.Snapshot
}

// conformanceNamespace replaces the "<NAMESPACE>" placeholder of the SMI
// conformance suite's kuttl steps, as its harness does.
const conformanceNamespace = "smi-conformance"

var sets = []struct {
	name        string
	dir         string // under ../shared/smi-examples
	placeholder bool
	skip        string // a file left out (not a Kubernetes object)
}{
	{name: "osm-demo", dir: "osm-demo"},
	{name: "emojivoto", dir: "emojivoto", skip: "ingress-ts-patch.yml"},
	{name: "linkerd-smi", dir: "linkerd-smi"},
	{name: "conformance-traffic-access", dir: "conformance/traffic-access", placeholder: true},
	{name: "conformance-traffic-spec", dir: "conformance/traffic-spec", placeholder: true},
	{name: "conformance-traffic-split", dir: "conformance/traffic-split", placeholder: true},
	{name: "conformance-sdk-samples", dir: "conformance/smi-controller-sdk/samples"},
}

// RepoRoot is the directory holding go.mod above the test's directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// Cases returns examples/bookstore, the edge cases and every SMI example set of
// ../shared/smi-examples (skipped when shared/ is not beside the
// repository) as snapshots. A set whose model has errors is still built:
// spec.Build keeps what is consistent, and that is what gets rendered.
func Cases(t testing.TB) []Case {
	t.Helper()
	root := RepoRoot(t)
	bookstore, _ := load(t, "bookstore", filepath.Join(root, "examples", "bookstore"))
	out := append([]Case{bookstore}, Edge(t)...)
	ex := filepath.Join(root, "..", "shared", "smi-examples")
	if _, err := os.Stat(ex); err != nil {
		t.Logf("public SMI examples not found at %s (clone shared/ beside the repository): only bookstore", ex)
		return out
	}
	for _, s := range sets {
		dir := copyDir(t, filepath.Join(ex, s.dir), s.placeholder, s.skip)
		c, _ := load(t, s.name, dir)
		out = append(out, c)
	}
	return out
}

func load(t testing.TB, name, dir string) (Case, spec.Diagnostics) {
	t.Helper()
	snap, ds, _, err := pipeline.Load([]string{dir}, nil, pipeline.Options{})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return Case{Name: name, Root: dir, Snapshot: snap}, ds
}

// copyDir copies the manifest files of dir (not its subdirectories) to a
// temporary directory, replacing the conformance placeholder if asked.
func copyDir(t testing.TB, dir string, placeholder bool, skip string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == skip {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if placeholder {
			data = bytes.ReplaceAll(data, []byte("<NAMESPACE>"), []byte(conformanceNamespace))
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Report renders diagnostics one per line with file names relative to the
// case's directory, so golden files do not depend on where it lives.
func Report(c Case, ds spec.Diagnostics) string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return strings.ReplaceAll(b.String(), c.Root+string(filepath.Separator), c.Name+"/")
}

// Golden compares got with the file at path, or rewrites it with -update.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *Update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
