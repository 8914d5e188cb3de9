package smi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// examplesDir is ../shared/smi-examples of the repository's parent: the repo
// is cloned with shared/ beside it.
const examplesDir = "../../../shared/smi-examples"

func examples(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(examplesDir); err != nil {
		t.Skipf("public SMI examples not found at %s (clone the repository with shared/ beside it): %v", examplesDir, err)
	}
	return examplesDir
}

// TestExamples translates every real manifest of the upstream samples and
// the OSM demo: no errors, and exactly the warnings listed (the known slips,
// and two other flaws of upstream files).
func TestExamples(t *testing.T) {
	t.Parallel()
	root := examples(t)
	// Per file (relative to root): the diagnostics expected, all warnings.
	want := map[string][]diag{
		// smi-controller-sdk writes `x-debug: 1`, a number to YAML.
		"conformance/smi-controller-sdk/samples/specs_v1alpha4_httproutegroup.yaml": {w("spec.matches[0].headers.x-debug", "header value is a number")},
		// A kubebuilder scaffold: `spec: {foo: bar}`.
		"conformance/smi-controller-sdk/samples/specs_v1alpha4_udproute.yaml": {w("spec.foo", `unknown field "foo"`)},
		// The two known slips, in the conformance suite's kuttl steps.
		"conformance/traffic-spec/03-install.yaml": {w("matches", "known slip"), w("spec.destination.port", "known slip")},
		"conformance/traffic-spec/05-install.yaml": {w("spec.destination.port", "known slip")},
	}
	// The one file that is not valid YAML (README of smi-examples).
	const badYAML = "conformance/smi-controller-sdk/samples/specs_v1alpha4_tcproute.yaml"
	dirs := []string{"conformance/smi-controller-sdk/samples", "osm-demo", "emojivoto", "linkerd-smi", "conformance/traffic-access", "conformance/traffic-spec", "conformance/traffic-split"}
	smiObjects := 0
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.y*ml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no manifests in %s: %v", dir, err)
		}
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			if strings.HasSuffix(rel, "-assert.yaml") {
				continue // kuttl assertions repeat the install steps
			}
			t.Run(rel, func(t *testing.T) {
				data, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				// kuttl replaces <NAMESPACE> with the test's namespace before
				// applying a step; so do we (a "<" is no namespace at all).
				src := strings.ReplaceAll(string(data), "<NAMESPACE>", "kuttl-test")
				objs, err := parseObjects(rel, src)
				if rel == badYAML {
					if err == nil {
						t.Fatalf("%s parsed; the examples README says it is not valid YAML", rel)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				in, ds := Translate(objs, Options{})
				checkDiags(t, ds, want[rel])
				n := 0
				for i := range objs {
					if Handles(&objs[i]) && objs[i].Kind != "IdentityBinding" {
						n++
					}
				}
				smiObjects += n
				if got := len(in.Splits) + len(in.Routes) + len(in.Policies); got != n {
					t.Errorf("translated %d objects of %d", got, n)
				}
			})
		}
	}
	t.Logf("%d SMI objects translated", smiObjects)
}

// TestOSMDemoBuilds runs the OSM demo through Build: references between its
// SMI objects all resolve, so the only diagnostics are the Services the
// Kubernetes adapter would provide. bookstore-traffictargets-same-sa.yaml is
// the demo's alternative to bookstore-traffictargets.yaml (one is applied,
// not both): together they define bookstore-access-bookwarehouse twice,
// which Build reports as a duplicate.
func TestOSMDemoBuilds(t *testing.T) {
	t.Parallel()
	root := examples(t)
	files, _ := filepath.Glob(filepath.Join(root, "osm-demo", "*.yaml"))
	var objs []adapters.Object
	for _, f := range files {
		if strings.HasSuffix(f, "-same-sa.yaml") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := parseObjects(filepath.Base(f), string(data))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o...)
	}
	in, ds := Translate(objs, Options{})
	snap, bds := spec.Build(in, spec.BuildOptions{})
	for _, d := range append(ds, bds...) {
		if d.Severity == spec.SeverityError || !strings.Contains(d.Message, "service") || !strings.Contains(d.Message, "not found") {
			t.Errorf("unexpected %s", d)
		}
	}
	// 2 HTTPRouteGroups + 5 TCPRoutes; 3 bookstore, 2 kafka, 1 mysql and
	// 2 zookeeper TrafficTargets; 1 TrafficSplit.
	if len(snap.Routes) != 7 || len(snap.Policies) != 8 || len(snap.Splits) != 0 {
		t.Errorf("snapshot has %d routes, %d policies, %d splits; want 7, 8, 0 (the split's services are missing)", len(snap.Routes), len(snap.Policies), len(snap.Splits))
	}
	for _, p := range snap.Policies {
		if len(p.Rules) == 0 || len(p.Sources) == 0 {
			t.Errorf("policy %s lost its rules or sources: %+v", p.Key, p)
		}
	}
}
