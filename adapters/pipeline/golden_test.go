package pipeline

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// examplesDir finds ../shared/smi-examples beside the repository (the
// repository is cloned with shared/ next to it), or skips the test.
func examplesDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	ex := filepath.Join(dir, "..", "shared", "smi-examples")
	if _, err := os.Stat(ex); err != nil {
		t.Skipf("public SMI examples not found at %s (clone shared/ beside the repository): %v", ex, err)
	}
	return ex
}

// conformanceNamespace replaces the "<NAMESPACE>" placeholder of the SMI
// conformance suite's kuttl steps, as its harness does before applying them
// (each run gets a fresh namespace); as written, the placeholder is not a
// valid namespace and every object using it is an error.
const conformanceNamespace = "smi-conformance"

// goldenCases are the manifest sets of ../shared/smi-examples, one per
// folder; each is read whole, as `causeway validate -f FOLDER` reads it.
var goldenCases = []struct {
	dir         string
	placeholder bool // replace <NAMESPACE> first
}{
	{dir: "osm-demo"},
	{dir: "emojivoto"},
	{dir: "linkerd-smi"},
	{dir: "conformance/traffic-access", placeholder: true},
	{dir: "conformance/traffic-spec", placeholder: true},
	{dir: "conformance/traffic-split", placeholder: true},
	{dir: "conformance/smi-controller-sdk/samples"},
}

// TestGolden builds every example set and compares the snapshot JSON and the
// diagnostics (with ignored objects) with testdata/golden/<dir>/. Run with
// -update to rewrite them, then read the diff: it is what the manifests mean.
func TestGolden(t *testing.T) {
	ex := examplesDir(t)
	for _, tc := range goldenCases {
		t.Run(tc.dir, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(ex, tc.dir)
			if tc.placeholder {
				root = substituted(t, root, "<NAMESPACE>", conformanceNamespace)
			}
			snap, diags, ignored, err := Load([]string{root}, nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			gold := filepath.Join("testdata", "golden", filepath.FromSlash(tc.dir))
			compareGolden(t, filepath.Join(gold, "snapshot.json"), snap.JSON(), true)
			compareGolden(t, filepath.Join(gold, "diagnostics.txt"), []byte(report(root, tc.dir, diags, ignored)), false)
		})
	}
}

// substituted copies dir to a temporary directory with old replaced by new
// in every file.
func substituted(t *testing.T, dir, old, new string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte(old), []byte(new))
		if err := os.WriteFile(filepath.Join(out, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// report renders diagnostics and ignored objects with file names relative
// to the example set, so the golden files do not depend on where it lives.
func report(root, name string, diags spec.Diagnostics, ignored []adapters.Object) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	for _, o := range ignored {
		b.WriteString("ignored: " + Ignored(o) + "\n")
	}
	return strings.ReplaceAll(b.String(), root+string(filepath.Separator), name+"/")
}

func compareGolden(t *testing.T, path string, got []byte, isJSON bool) {
	t.Helper()
	if *update {
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
	if bytes.Equal(got, want) {
		return
	}
	if isJSON && sameJSON(got, want) {
		return
	}
	t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
}

// sameJSON compares two JSON documents by meaning.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestConformanceManifestsValidate checks every SMI manifest of the
// conformance suite on its own (placeholder replaced, as the harness does):
// each must be valid, warnings allowed, except the one upstream file that
// is not YAML, which must fail naming its line.
func TestConformanceManifestsValidate(t *testing.T) {
	ex := examplesDir(t)
	files, err := filepath.Glob(filepath.Join(ex, "conformance", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	samples, _ := filepath.Glob(filepath.Join(ex, "conformance", "smi-controller-sdk", "samples", "*.yaml"))
	files = append(files, samples...)
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("smi-spec.io/")) {
			continue
		}
		checked++
		rel, _ := filepath.Rel(ex, f)
		t.Run(rel, func(t *testing.T) {
			t.Parallel()
			data := bytes.ReplaceAll(data, []byte("<NAMESPACE>"), []byte(conformanceNamespace))
			_, diags, _, err := Load([]string{"-"}, bytes.NewReader(data), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(f) == "specs_v1alpha4_tcproute.yaml" {
				if len(diags) != 1 || !strings.HasPrefix(diags[0].String(), "-:2: document 0: invalid YAML") {
					t.Fatalf("want one YAML error at line 2, got %v", diags)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatalf("errors:\n%v", diags.Err())
			}
		})
	}
	if checked < 30 {
		t.Fatalf("only %d SMI manifests found under %s", checked, ex)
	}
}
