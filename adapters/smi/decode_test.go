package smi

import (
	"testing"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

func TestHandles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		apiVersion string
		want       bool
	}{
		{"split.smi-spec.io/v1alpha2", true},
		{"access.smi-spec.io/v1alpha3", true},
		{"specs.smi-spec.io/v1alpha4", true},
		{"metrics.smi-spec.io/v1alpha1", true},
		{"split.smi-spec.io/v1alpha9", true}, // read, to be reported unknown
		{"v1", false},
		{"apps/v1", false},
		{"smi-spec.io/v1alpha1", false},
		{"", false},
	}
	for _, tc := range cases {
		t.Run(tc.apiVersion, func(t *testing.T) {
			t.Parallel()
			if got := Handles(&adapters.Object{APIVersion: tc.apiVersion}); got != tc.want {
				t.Errorf("Handles(%q) = %v, want %v", tc.apiVersion, got, tc.want)
			}
		})
	}
}

func TestStrictDecoding(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		yaml   string
		strict bool
		out    int // objects translated
		diags  []diag
	}{
		{
			name: "unknown fields at every depth are warnings with paths",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop, labls: {a: b}}
extra: 1
spec:
  service: web
  backends:
  - {service: web-a, weight: 1, color: blue}`,
			out: 1,
			diags: []diag{
				w("metadata.labls", `unknown field "labls"`),
				w("extra", `unknown field "extra" (known here: apiVersion, kind, metadata, spec)`),
				w("spec.backends[0].color", `unknown field "color"`),
			},
		},
		{
			name:   "unknown fields are errors with Strict",
			strict: true,
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  service: web
  backends:
  - {service: web-a, weight: 1, color: blue}`,
			diags: []diag{e("spec.backends[0].color", `unknown field "color"`)},
		},
		{
			name: "field names are case-sensitive, as in Kubernetes",
			yaml: `
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: s, namespace: shop}
spec:
  Service: web
  backends:
  - {service: web-a, weight: 1}`,
			diags: []diag{w("spec.Service", `did you mean "service"?`), e("spec.service", "required")},
		},
		{
			name: "status is a controller's and is ignored",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: r, namespace: shop, labels: {app: db}, creationTimestamp: "2024-01-01T00:00:00Z"}
status: {whatever: true}`,
			out: 1,
		},
		{
			name: "metadata of the wrong shape",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: r, labels: [a], creationTimestamp: yesterday, generation: many}`,
			diags: []diag{
				e("metadata.labels", "wrong type: got list, want object"),
				e("metadata.creationTimestamp", `invalid value string "yesterday"`),
				e("metadata.generation", `wrong type: got string "many", want integer`),
			},
		},
		{
			name: "keys that need quoting in a path",
			yaml: `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: r, "a.b": 1}`,
			out:   1,
			diags: []diag{w(`metadata["a.b"]`, `unknown field "a.b"`)},
		},
		{
			name:  "TrafficMetrics is served, not stored",
			yaml:  "apiVersion: metrics.smi-spec.io/v1alpha1\nkind: TrafficMetrics\nmetadata: {name: m}",
			diags: []diag{w("", "TrafficMetrics is served by the metrics API, not stored; ignored")},
		},
		{
			name:  "unknown metrics version",
			yaml:  "apiVersion: metrics.smi-spec.io/v1beta1\nkind: TrafficMetrics\nmetadata: {name: m}",
			diags: []diag{e("apiVersion", `unknown version "v1beta1" of TrafficMetrics`)},
		},
		{
			name:  "no kind",
			yaml:  "apiVersion: specs.smi-spec.io/v1alpha4\nmetadata: {name: m}",
			diags: []diag{e("kind", `kind "" is not part of specs.smi-spec.io (Causeway reads: HTTPRouteGroup, TCPRoute, UDPRoute)`)},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, ds := Translate(objects(t, tc.yaml), Options{Strict: tc.strict})
			checkDiags(t, ds, tc.diags)
			if got := len(in.Splits) + len(in.Routes) + len(in.Policies); got != tc.out {
				t.Errorf("translated %d objects, want %d", got, tc.out)
			}
			for _, d := range ds {
				if d.Object.Kind == "" {
					t.Errorf("diagnostic names no kind: %s", d)
				}
			}
		})
	}
}

// TestNotJSON covers documents a reader could hand over broken.
func TestNotJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		raw  string
		msg  string
	}{
		{"truncated", `{"spec":`, "cannot read document"},
		{"a list", `[1,2]`, "document is list, want an object"},
		{"two values", `{} {}`, "more than one JSON value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := adapters.Object{APIVersion: "split.smi-spec.io/v1alpha2", Kind: "TrafficSplit", Name: "s", Raw: []byte(tc.raw)}
			_, ds := Translate([]adapters.Object{o}, Options{})
			checkDiags(t, ds, []diag{e("", tc.msg)})
			if ds[0].Object != (spec.Object{Kind: "TrafficSplit", Namespace: "default", Name: "s"}) {
				t.Errorf("object = %+v", ds[0].Object)
			}
		})
	}
}

// walkerProbe has a field of every kind the walker handles, including an
// embedded struct flattened as encoding/json does.
type walkerProbe struct {
	walkerInline `json:",inline"`
	B            bool              `json:"b"`
	U            uint8             `json:"u"`
	I            int16             `json:"i"`
	F            float64           `json:"f"`
	Raw          []byte            `json:"raw"`
	Any          any               `json:"any"`
	M            map[string]string `json:"m"`
	P            *int              `json:"p"`
	Skipped      string            `json:"-"`
}

type walkerInline struct {
	Inner string `json:"inner"`
}

func TestDecodeStrictKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		json string
		want []problem
	}{
		{name: "all good", json: `{"inner":"x","b":true,"u":200,"i":-3,"f":1.5,"raw":"aGk=","any":[1,{"a":null}],"m":{"k":"v"},"p":null}`},
		{
			name: "every kind wrong",
			json: `{"inner":1,"b":"yes","u":-1,"i":40000,"f":"1","raw":[1],"m":{"k":2},"p":"x","Skipped":"s"}`,
			want: []problem{
				{field: "Skipped", unknown: true},
				{field: "b", msg: `wrong type: got string "yes", want boolean`},
				{field: "f", msg: `wrong type: got string "1", want number`},
				{field: "i", msg: "wrong type: got number 40000, want integer that fits in 16 bits"},
				{field: "inner", msg: "wrong type: got number 1, want string"},
				{field: "m.k", msg: "wrong type: got number 2, want string"},
				{field: "p", msg: `wrong type: got string "x", want integer`},
				{field: "raw", msg: "wrong type: got list, want base64 string"},
				{field: "u", msg: "wrong type: got number -1, want unsigned integer"},
			},
		},
		{
			name: "long values are clipped in messages",
			json: `{"b":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","m":[]}`,
			want: []problem{
				{field: "b", msg: `wrong type: got string "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...", want boolean`},
				{field: "m", msg: "wrong type: got list, want object"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tree, err := parseTree([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			var out walkerProbe
			got := decodeStrict(tree, &out)
			if len(got) != len(tc.want) {
				t.Fatalf("problems = %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.field != w.field || g.unknown != w.unknown || (w.msg != "" && g.msg != w.msg) {
					t.Errorf("problem %d = %+v, want %+v", i, g, w)
				}
			}
			if len(tc.want) == 0 && (out.Inner != "x" || !out.B || out.U != 200 || out.I != -3 || out.F != 1.5 || string(out.Raw) != "hi" || out.M["k"] != "v") {
				t.Errorf("decoded %+v", out)
			}
		})
	}
}
