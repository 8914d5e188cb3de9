package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTranslateMesh runs translate to each mesh target on the bookstore
// example: YAML and JSON carry the same objects, diagnostics of what the
// target cannot express go to stderr naming file, object and field, and
// usage errors exit 2.
func TestTranslateMesh(t *testing.T) {
	t.Parallel()
	bookstore := filepath.Join("..", "..", "examples", "bookstore")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // substrings
		stderr string   // substring
	}{
		{name: "istio", args: []string{"--to", "istio"},
			stdout: []string{"kind: VirtualService", "kind: AuthorizationPolicy", "name: causeway-deny-all", "- cluster.local/ns/bookbuyer/sa/bookbuyer", "weight: 90"},
			stderr: `traffic-access.yaml:2: HTTPRouteGroup bookstore/bookstore-service-routes: spec.matches[1].pathRegex: warning: istio: match "buy-a-book"`},
		{name: "linkerd", args: []string{"--to", "linkerd"},
			stdout: []string{"kind: MeshTLSAuthentication", "kind: Server", "bookbuyer.bookbuyer.serviceaccount.identity.linkerd.cluster.local", "config.linkerd.io/default-inbound-policy: deny"},
			stderr: "TrafficTarget bookstore/bookbuyer-access-bookstore: spec.destination: warning: linkerd:"},
		{name: "gateway-api", args: []string{"--to", "gateway-api"},
			stdout: []string{"kind: HTTPRoute", "weight: 9\n", "weight: 1\n"},
			stderr: "TrafficTarget db/bookwarehouse-access-mysql: warning: gateway-api: not rendered"},
		{name: "export needs a gateway address", args: []string{"--to", "istio", "--gateway-identity", "spiffe://cluster.local/ns/causeway-system/sa/causeway-gateway"},
			stdout: []string{"kind: VirtualService"}},
		{name: "bad channel", args: []string{"--to", "gateway-api", "--gateway-api-channel", "beta"}, code: 2, stderr: `"beta"`},
		{name: "bad gateway identity", args: []string{"--to", "istio", "--gateway-identity", "gw"}, code: 2, stderr: "--gateway-identity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"translate", "-f", bookstore, "-o", "yaml"}, tc.args...)
			code, stdout, stderr := causeway(t, "", args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
			if code != 0 {
				return
			}
			// The JSON form is one List holding the same number of objects.
			_, js, _ := causeway(t, "", append([]string{"translate", "-f", bookstore, "-o", "json"}, tc.args...)...)
			var list struct {
				Kind  string
				Items []map[string]any
			}
			if err := json.Unmarshal([]byte(js), &list); err != nil || list.Kind != "List" {
				t.Fatalf("JSON output is not a List: %v\n%s", err, js)
			}
			if docs := strings.Count(stdout, "\n---\n") + 1; docs != len(list.Items) {
				t.Errorf("%d YAML documents but %d JSON items", docs, len(list.Items))
			}
		})
	}
}

// TestTranslateMeshOrder gives each mesh target the osm-demo files in two
// orders; the bytes must be the same.
func TestTranslateMeshOrder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(examples(t), "osm-demo")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var fwd, rev []string
	for _, e := range entries {
		fwd = append(fwd, "-f", filepath.Join(dir, e.Name()))
		rev = append([]string{"-f", filepath.Join(dir, e.Name())}, rev...)
	}
	for _, to := range []string{"istio", "linkerd", "gateway-api"} {
		t.Run(to, func(t *testing.T) {
			t.Parallel()
			c1, out1, err1 := causeway(t, "", append([]string{"translate", "--to", to, "-o", "yaml"}, fwd...)...)
			c2, out2, err2 := causeway(t, "", append([]string{"translate", "--to", to, "-o", "yaml"}, rev...)...)
			if c1 != 0 || c2 != 0 {
				t.Fatalf("exit %d / %d\n%s\n%s", c1, c2, err1, err2)
			}
			if out1 != out2 || err1 != err2 {
				t.Fatalf("output differs with the files in reverse order:\n%s\n---\n%s", out1, out2)
			}
			if len(out1) < 100 {
				t.Fatalf("suspiciously short output: %q", out1)
			}
		})
	}
}
