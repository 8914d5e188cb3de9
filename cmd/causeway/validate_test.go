package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// causeway runs the command line in-process and returns what it printed.
func causeway(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runIO(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// examples returns ../shared/smi-examples beside the repository, or skips.
func examples(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "smi-examples"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("public SMI examples not found at %s (clone shared/ beside the repository): %v", dir, err)
	}
	return dir
}

const services = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec:
  selector: {app: web-v2}
  ports: [{name: http, port: 80}]
`

// inputs written for the CLI tests, by file name.
var inputs = map[string]string{
	"svc.yaml": services,
	"negative.yaml": `apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-v2, weight: 10}
  - {service: web, weight: -1}
`,
	"regex.yaml": `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: r, namespace: shop}
spec:
  matches:
  - {name: ok, pathRegex: /a}
  - {name: bad, pathRegex: "/a(b"}
`,
	"version.yaml": `apiVersion: split.smi-spec.io/v1alpha9
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec: {service: web, backends: [{service: web, weight: 1}]}
`,
	"missing.yaml": `apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec: {service: nowhere, backends: [{service: web, weight: 1}]}
`,
	"syntax.yaml": `apiVersion: v1
kind: Service
metadata: {name: ok, namespace: shop}
---
apiVersion: v1
kind: Service
metadata:
  name: broken
   namespace: shop
`,
	"type.yaml": `apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - service: web-v2
    weight: "abc"
`,
	"unknown.yaml": `apiVersion: v1
kind: Service
metadata: {name: u, namespace: shop}
spec:
  selectr: {app: u}
  ports: [{port: 80}]
`,
	"placeholder.yaml": `apiVersion: v1
kind: ServiceAccount
metadata: {name: service-a, namespace: <NAMESPACE>}
`,
	"other.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: b}
`,
}

func writeInputs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range inputs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := writeInputs(t)
	in := func(name string) string { return filepath.Join(dir, name) }
	svc := in("svc.yaml")
	tests := []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout []string // substrings expected on stdout
		stderr []string // substrings expected on stderr
	}{
		{
			name:   "valid input with an ignored kind",
			args:   []string{"validate", "-f", svc, "-f", in("other.yaml")},
			code:   0,
			stdout: []string{"valid: 2 services"},
			stderr: []string{"ignored: " + in("other.yaml") + ":1: ConfigMap shop/settings (not used by Causeway)"},
		},
		{
			name:   "negative weight",
			args:   []string{"validate", "-f", svc, "-f", in("negative.yaml")},
			code:   1,
			stderr: []string{in("negative.yaml") + ":8: TrafficSplit shop/s: spec.backends[1].weight: must be >= 0", "causeway: invalid: 1 error"},
		},
		{
			name:   "bad regex",
			args:   []string{"validate", "-f", in("regex.yaml")},
			code:   1,
			stderr: []string{in("regex.yaml") + ":7: HTTPRouteGroup shop/r: spec.matches[1].pathRegex: invalid regex"},
		},
		{
			name:   "unknown SMI version",
			args:   []string{"validate", "-f", svc, "-f", in("version.yaml")},
			code:   1,
			stderr: []string{in("version.yaml") + ":1: TrafficSplit shop/s: apiVersion: ", "v1alpha9"},
		},
		{
			name:   "missing reference is a warning by default",
			args:   []string{"validate", "-f", svc, "-f", in("missing.yaml")},
			code:   0,
			stderr: []string{in("missing.yaml") + ":4: TrafficSplit shop/s: spec.service: warning: root service shop/nowhere not found"},
		},
		{
			name:   "missing reference is an error with --strict",
			args:   []string{"validate", "--strict", "-f", svc, "-f", in("missing.yaml")},
			code:   1,
			stderr: []string{in("missing.yaml") + ":4: TrafficSplit shop/s: spec.service: root service shop/nowhere not found"},
		},
		{
			name:   "YAML syntax error names the line in the file",
			args:   []string{"validate", "-f", in("syntax.yaml")},
			code:   1,
			stderr: []string{in("syntax.yaml") + ":9: document 1: invalid YAML"},
		},
		{
			name:   "wrong field type",
			args:   []string{"validate", "-f", svc, "-f", in("type.yaml")},
			code:   1,
			stderr: []string{in("type.yaml") + ":8: TrafficSplit shop/s: spec.backends[0].weight: ", `"abc"`},
		},
		{
			name:   "unknown field is a warning",
			args:   []string{"validate", "-f", in("unknown.yaml")},
			code:   0,
			stderr: []string{in("unknown.yaml") + ":5: Service shop/u: spec.selectr: warning: unknown field"},
		},
		{
			name:   "unknown field is an error with --strict",
			args:   []string{"validate", "--strict", "-f", in("unknown.yaml")},
			code:   1,
			stderr: []string{in("unknown.yaml") + ":5: Service shop/u: spec.selectr: unknown field"},
		},
		{
			name:   "a template placeholder is not a namespace",
			args:   []string{"validate", "-f", in("placeholder.yaml")},
			code:   1,
			stderr: []string{in("placeholder.yaml") + `:3: ServiceAccount <NAMESPACE>/service-a: metadata.namespace: invalid namespace "<NAMESPACE>"`},
		},
		{
			name:   "every error is listed at once",
			args:   []string{"validate", "-f", dir},
			code:   1,
			stderr: []string{"spec.backends[1].weight", "pathRegex", "v1alpha9", "invalid YAML", `"abc"`, "spec.selectr", "<NAMESPACE>"},
		},
		{
			name:   "stdin",
			args:   []string{"validate", "-f", "-"},
			stdin:  services,
			code:   0,
			stdout: []string{"valid: 2 services"},
		},
		{
			name:   "-n sets the namespace of documents without one",
			args:   []string{"validate", "--strict", "-n", "other", "-f", "-"},
			stdin:  "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, name: UDP}], selectr: {}}\n",
			code:   1,
			stderr: []string{"-:4: Service other/x: spec.selectr: unknown field"},
		},
		{name: "no -f", args: []string{"validate"}, code: 2, stderr: []string{"no input"}},
		{name: "unknown flag", args: []string{"validate", "-f", svc, "--frobnicate"}, code: 2, stderr: []string{"frobnicate"}},
		{name: "unreadable path", args: []string{"validate", "-f", in("nope.yaml")}, code: 2, stderr: []string{"nope.yaml"}},
		{name: "bad output format", args: []string{"validate", "-f", svc, "-o", "xml"}, code: 2, stderr: []string{`-o "xml"`}},
		{name: "bad trust domain", args: []string{"validate", "-f", svc, "--trust-domain", "Not A Domain"}, code: 2, stderr: []string{"--trust-domain"}},
		{name: "positional arguments", args: []string{"validate", svc}, code: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := causeway(t, tc.stdin, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	t.Parallel()
	dir := writeInputs(t)
	code, stdout, _ := causeway(t, "", "validate", "-o", "json", "-f", filepath.Join(dir, "svc.yaml"), "-f", filepath.Join(dir, "negative.yaml"), "-f", filepath.Join(dir, "other.yaml"))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	var got struct {
		Valid       bool
		Diagnostics []struct {
			Severity string
			Source   struct {
				File string
				Line int
			}
			Object struct{ Kind, Namespace, Name string }
			Field  string
		}
		Ignored []struct{ Kind, Name string }
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	if got.Valid {
		t.Error("valid = true for a negative weight")
	}
	i := slices.IndexFunc(got.Diagnostics, func(d struct {
		Severity string
		Source   struct {
			File string
			Line int
		}
		Object struct{ Kind, Namespace, Name string }
		Field  string
	}) bool {
		return d.Severity == "error"
	})
	if i < 0 {
		t.Fatalf("no error among %+v", got.Diagnostics)
	}
	d := got.Diagnostics[i]
	if filepath.Base(d.Source.File) != "negative.yaml" || d.Source.Line != 8 || d.Object.Kind != "TrafficSplit" || d.Object.Name != "s" || d.Field != "spec.backends[1].weight" {
		t.Errorf("error diagnostic = %+v", d)
	}
	if len(got.Ignored) != 1 || got.Ignored[0].Kind != "ConfigMap" || got.Ignored[0].Name != "settings" {
		t.Errorf("ignored = %+v", got.Ignored)
	}
}

func TestValidateExamples(t *testing.T) {
	t.Parallel()
	ex := examples(t)
	code, stdout, stderr := causeway(t, "", "validate", "-f", filepath.Join(ex, "osm-demo"))
	if code != 0 || !strings.Contains(stdout, "valid: 6 services") {
		t.Fatalf("validate osm-demo: exit %d\n%s%s", code, stdout, stderr)
	}
	// The one file of the examples that is not YAML must be named, with
	// its line, and fail the set it is in.
	bad := filepath.Join(ex, "conformance", "smi-controller-sdk", "samples", "specs_v1alpha4_tcproute.yaml")
	code, _, stderr = causeway(t, "", "validate", "-f", filepath.Dir(bad))
	if code != 1 || !strings.Contains(stderr, bad+":2: document 0: invalid YAML") {
		t.Fatalf("validate smi-controller-sdk samples: exit %d\n%s", code, stderr)
	}
}

func TestTranslate(t *testing.T) {
	t.Parallel()
	dir := writeInputs(t)
	svc := filepath.Join(dir, "svc.yaml")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring
		stderr string // substring
	}{
		{name: "json by default", args: []string{"translate", "-f", svc}, stdout: `"name": "web-v2"`},
		{name: "yaml", args: []string{"translate", "-f", svc, "-o", "yaml"}, stdout: "name: web-v2\n"},
		{name: "invalid input prints diagnostics only", args: []string{"translate", "-f", svc, "-f", filepath.Join(dir, "negative.yaml")}, code: 1, stderr: "spec.backends[1].weight"},
		{name: "istio", args: []string{"translate", "-f", svc, "--to", "istio"}, stdout: `"kind": "List"`},
		{name: "linkerd", args: []string{"translate", "-f", svc, "--to", "linkerd", "-o", "yaml"}, stdout: "kind: "},
		{name: "gateway-api", args: []string{"translate", "-f", svc, "--to", "gateway-api", "-o", "yaml"}, stdout: ""},
		{name: "unknown target", args: []string{"translate", "-f", svc, "--to", "consul"}, code: 2, stderr: `"consul"`},
		{name: "bad output", args: []string{"translate", "-f", svc, "-o", "table"}, code: 2, stderr: `"table"`},
		{name: "no -f", args: []string{"translate"}, code: 2, stderr: "no input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := causeway(t, "", tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("stdout %q / stderr %q do not hold %q / %q", stdout, stderr, tc.stdout, tc.stderr)
			}
			if code != 0 && stdout != "" {
				t.Fatalf("stdout not empty on failure: %s", stdout)
			}
		})
	}
}

// TestTranslateDeterministic gives translate the same manifests twice: once
// as written, once with the documents of every file shuffled and the files
// listed in the opposite order. The output must be byte for byte the same.
func TestTranslateDeterministic(t *testing.T) {
	t.Parallel()
	ex := examples(t)
	// Sets whose files define each object once (a set holding successive
	// versions of one object means the last file wins, by design).
	sets := map[string][]string{
		"osm-demo": {
			"osm-demo/apps-bookstore-bookbuyer-bookthief-bookwarehouse.yaml", "osm-demo/bookstore-httproutegroups.yaml",
			"osm-demo/bookstore-trafficsplit.yaml", "osm-demo/bookstore-traffictargets.yaml",
			"osm-demo/kafka-tcproutes-traffictargets.yaml", "osm-demo/mysql-tcproute-traffictarget.yaml",
			"osm-demo/zookeeper-tcproutes-traffictargets.yaml",
		},
		"emojivoto": {"emojivoto/emojivoto.yml", "emojivoto/web-apex.yml", "emojivoto/web-svc-2.yml", "emojivoto/75-25.yml"},
	}
	for name, files := range sets {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(len(files))))
			shuffled := t.TempDir()
			var first, second []string
			changed := false
			for _, f := range files {
				src := filepath.Join(ex, filepath.FromSlash(f))
				first = append(first, "-f", src)
				data, err := os.ReadFile(src)
				if err != nil {
					t.Fatal(err)
				}
				docs := strings.Split("\n"+string(data)+"\n", "\n---\n")
				rng.Shuffle(len(docs), func(i, j int) { docs[i], docs[j] = docs[j], docs[i] })
				out := strings.Join(docs, "\n---\n")
				changed = changed || out != "\n"+string(data)+"\n"
				dst := filepath.Join(shuffled, filepath.Base(f))
				if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				second = append([]string{"-f", dst}, second...)
			}
			if !changed {
				t.Fatal("shuffling moved no document; the test would prove nothing")
			}
			for _, format := range []string{"json", "yaml"} {
				c1, out1, err1 := causeway(t, "", append([]string{"translate", "-o", format}, first...)...)
				c2, out2, err2 := causeway(t, "", append([]string{"translate", "-o", format}, second...)...)
				if c1 != 0 || c2 != 0 {
					t.Fatalf("exit %d / %d\n%s\n%s", c1, c2, err1, err2)
				}
				if out1 != out2 {
					t.Fatalf("%s output differs with shuffled input:\n%s\n---\n%s", format, out1, out2)
				}
				if len(out1) < 100 {
					t.Fatalf("suspiciously short output: %q", out1)
				}
			}
		})
	}
}
