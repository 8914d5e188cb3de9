package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// obj is what a test expects of one returned Object.
type obj struct {
	Doc, Line              int
	APIVersion, Kind, Name string
	Namespace              string
}

func summarise(t *testing.T, file string, data string) ([]obj, []string) {
	t.Helper()
	objs, diags := Parse(file, []byte(data))
	var got []obj
	for _, o := range objs {
		if o.Source.File != file {
			t.Errorf("object %s: Source.File = %q, want %q", o.Name, o.Source.File, file)
		}
		if !json.Valid(o.Raw) {
			t.Errorf("object %s: Raw is not JSON: %s", o.Name, o.Raw)
		}
		got = append(got, obj{o.Source.Document, o.Source.Line, o.APIVersion, o.Kind, o.Name, o.Namespace})
	}
	var msgs []string
	for _, d := range diags {
		msgs = append(msgs, d.String())
	}
	return got, msgs
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string // "m.yaml" when empty
		data  string
		objs  []obj
		diags []string
	}{
		{
			name: "documents with comments, empty documents and a leading separator",
			data: "# header\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: ns\n---\n# only a comment\n---\n\n\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: b}\n",
			objs: []obj{{0, 3, "v1", "Service", "a", "ns"}, {1, 13, "v1", "ServiceAccount", "b", ""}},
		},
		{
			name: "content on the separator line and an end marker",
			data: "--- {apiVersion: v1, kind: Pod, metadata: {name: p}}\n...\n--- # next\napiVersion: v1\nkind: Pod\nmetadata: {name: q}\n",
			objs: []obj{{0, 1, "v1", "Pod", "p", ""}, {1, 4, "v1", "Pod", "q", ""}},
		},
		{
			name:  "a syntax error names the absolute line and the other documents survive",
			data:  "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n   bad: indent\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: c}\n",
			objs:  []obj{{0, 1, "v1", "Pod", "a", ""}, {2, 11, "v1", "Pod", "c", ""}},
			diags: []string{"m.yaml:9: document 1: invalid YAML: mapping values are not allowed in this context"},
		},
		{
			name:  "duplicate keys are an error, as for kubectl",
			data:  "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n",
			diags: []string{`m.yaml:5: document 0: invalid YAML: key "name" already set in map`},
		},
		{
			name: "List items are expanded; bad items are named by their path",
			data: "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: s, namespace: ns}\n- apiVersion: v1\n  kind: 5\n- {kind: Pod}\n",
			objs: []obj{{0, 1, "v1", "Service", "s", "ns"}},
			diags: []string{
				"m.yaml:1: items[1].kind: must be a string, found a number",
				"m.yaml:1: Pod (unnamed): items[2].apiVersion: required",
			},
		},
		{
			name: "missing kind or apiVersion, wrong metadata, not an object",
			data: "apiVersion: v1\nmetadata: {name: a}\n---\nkind: Pod\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Pod\nmetadata: [1]\n---\n- a\n---\n\"text\"\n",
			diags: []string{
				"m.yaml:1: kind: required",
				"m.yaml:4: Pod b: apiVersion: required",
				"m.yaml:7: metadata: must be an object, found a list",
				"m.yaml:11: document 3: not an object with apiVersion and kind (found a list)",
				"m.yaml:13: document 4: not an object with apiVersion and kind (found a string)",
			},
		},
		{
			name: "a document without a name is returned; the pipeline decides",
			data: "apiVersion: kudo.dev/v1alpha1\nkind: TestStep\ndelete: []\n",
			objs: []obj{{0, 1, "kudo.dev/v1alpha1", "TestStep", "", ""}},
		},
		{
			name: "a JSON stream with tabs, in a .yaml file: both objects are read",
			data: "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"a\"}\n}\n\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\"}}\n",
			objs: []obj{{0, 1, "v1", "Pod", "a", ""}, {1, 7, "v1", "Pod", "b", ""}},
		},
		{
			name:  "a JSON syntax error names its line",
			file:  "m.json",
			data:  "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\"\n  \"metadata\": {}\n}\n",
			diags: []string{"m.json:4: document 0: invalid JSON: invalid character '\"' after object key:value pair"},
		},
		{
			name: "content that starts with { is JSON, whatever the file name",
			file: "-",
			data: "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"a\"}}\n{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"b\"}}",
			objs: []obj{{0, 1, "v1", "Pod", "a", ""}, {1, 2, "v1", "Pod", "b", ""}},
		},
		{
			name:  "a template is named as such",
			data:  "{{- $x := 1 -}}\napiVersion: v1\nkind: Pod\nmetadata: {name: {{ .Name }}}\n",
			diags: []string{"m.yaml:1: document 0: invalid YAML: did not find expected node content (this looks like a Helm or Go template: render it first)"},
		},
		{
			name: "only comments and nulls",
			data: "# nothing\n---\n~\n---\nnull\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := tc.file
			if file == "" {
				file = "m.yaml"
			}
			got, diags := summarise(t, file, tc.data)
			if !reflect.DeepEqual(got, tc.objs) {
				t.Errorf("objects:\n got %+v\nwant %+v", got, tc.objs)
			}
			if !reflect.DeepEqual(diags, tc.diags) {
				t.Errorf("diagnostics:\n got %q\nwant %q", diags, tc.diags)
			}
		})
	}
}

func TestParseRawIsJSON(t *testing.T) {
	t.Parallel()
	objs, diags := Parse("w.yaml", []byte("apiVersion: split.smi-spec.io/v1alpha1\nkind: TrafficSplit\nmetadata: {name: s}\nspec:\n  backends:\n  - service: a\n    weight: 500m\n  - service: b\n    weight: 1\n"))
	if len(diags) != 0 || len(objs) != 1 {
		t.Fatalf("objs=%d diags=%v", len(objs), diags)
	}
	var v struct {
		Spec struct {
			Backends []struct {
				Service string
				Weight  any
			}
		}
	}
	if err := json.Unmarshal(objs[0].Raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Spec.Backends) != 2 || v.Spec.Backends[0].Weight != "500m" || v.Spec.Backends[1].Weight != float64(1) {
		t.Fatalf("Raw lost values: %s", objs[0].Raw)
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(name string) string { return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\n" }
	write("b.yaml", pod("b"))
	write("a/z.yml", pod("z"))
	write("a/c.json", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"c"}}`)
	write("notes.txt", pod("txt"))
	write("explicit.txt", pod("explicit"))
	write("empty/readme.md", "")

	tests := []struct {
		name    string
		paths   []string
		stdin   string
		names   []string
		wantErr string
	}{
		{name: "directory walk is recursive, sorted and filtered", paths: []string{dir}, names: []string{"c", "z", "b"}},
		{name: "an explicit file is read whatever its name", paths: []string{filepath.Join(dir, "explicit.txt"), filepath.Join(dir, "b.yaml")}, names: []string{"explicit", "b"}},
		{name: "stdin", paths: []string{"-"}, stdin: pod("in"), names: []string{"in"}},
		{name: "missing path", paths: []string{filepath.Join(dir, "nope.yaml")}, wantErr: "no such file"},
		{name: "stdin twice", paths: []string{"-", "-"}, wantErr: "more than once"},
		{name: "directory without manifests", paths: []string{filepath.Join(dir, "empty")}, wantErr: "no *.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs, diags, err := Read(tc.paths, strings.NewReader(tc.stdin))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(diags) != 0 {
				t.Fatalf("err=%v diags=%v", err, diags)
			}
			var names []string
			for _, o := range objs {
				names = append(names, o.Name)
				if o.Source.File == "" {
					t.Errorf("%s: no Source.File", o.Name)
				}
			}
			if !reflect.DeepEqual(names, tc.names) {
				t.Fatalf("names = %v, want %v", names, tc.names)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that what it returns is
// usable: every object has a kind, an apiVersion, a file and JSON Raw, and
// every diagnostic is an error naming the file with a line inside it.
func FuzzParse(f *testing.F) {
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: Pod}]\n"))
	f.Add([]byte("{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}{\"kind\":1}"))
	f.Add([]byte("--- {a: [1, 2}\n...\n---\n- x\n"))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\n  labels: &a {x: *a}\n"))
	f.Add([]byte("apiVersion: v1\rkind: Pod\r\nmetadata: {name: a}\rspec: {x: [1,\r 2]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, "f.yaml", data)
		// Also through the JSON reader, whatever the first byte.
		checkParse(t, "f.json", append([]byte("{}"), data...))
	})
}

func checkParse(t *testing.T, name string, data []byte) {
	t.Helper()
	objs, diags, ix := ParseIndexed(name, data)
	lines := strings.Count(string(data), "\n") + 1
	for _, o := range objs {
		if o.Kind == "" || o.APIVersion == "" || o.Source.File != name {
			t.Fatalf("incomplete object %+v", o)
		}
		if !json.Valid(o.Raw) {
			t.Fatalf("Raw is not JSON: %q", o.Raw)
		}
		if o.Source.Line < 1 || o.Source.Line > lines {
			t.Fatalf("line %d outside 1..%d", o.Source.Line, lines)
		}
		for _, f := range []string{"metadata.name", "spec", "spec.x[0].y", "kind"} {
			if l, ok := ix.Line(o.Source, f); ok && (l < 1 || l > lines) {
				t.Fatalf("field %s at line %d outside 1..%d", f, l, lines)
			}
		}
	}
	for _, d := range diags {
		if d.Severity != spec.SeverityError || d.Source.File != name || d.Source.Line < 1 || d.Source.Line > lines+1 {
			t.Fatalf("%s: bad diagnostic %+v (lines %d)", name, d, lines)
		}
	}
}
