package main

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/causeway-mesh/causeway/deploy"
	"github.com/causeway-mesh/causeway/internal/kubetest"
	"github.com/causeway-mesh/causeway/internal/redirect"
)

var updateInject = flag.Bool("update-inject", false, "rewrite testdata/inject/*/out.yaml and stderr")

// TestInjectGolden runs `causeway inject -f in.yaml` on each case under
// testdata/inject and compares stdout with out.yaml and stderr with the
// stderr file (-update-inject rewrites them). Running inject again on
// out.yaml must print out.yaml unchanged: injecting twice is injecting once.
func TestInjectGolden(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob(filepath.Join("testdata", "inject", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			code, out, errOut := causeway(t, "", "inject", "-f", filepath.Join(dir, "in.yaml"), "--proxy-image", "causeway:test")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			errOut = strings.ReplaceAll(errOut, dir, "DIR")
			files := []struct{ name, got string }{{"out.yaml", out}, {"stderr", errOut}}
			for _, f := range files {
				path := filepath.Join(dir, f.name)
				if *updateInject {
					if err := os.WriteFile(path, []byte(f.got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if f.got != string(want) {
					t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, f.got, want)
				}
			}
			code, again, errOut := causeway(t, out, "inject", "-f", "-", "--proxy-image", "causeway:test")
			if code != 0 || again != out {
				t.Errorf("second inject (exit %d, %s) changed the output:\n%s", code, errOut, again)
			}
		})
	}
}

func TestInjectErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"no file", "", []string{"inject"}, 2, "-f FILE is required"},
		{"missing file", "", []string{"inject", "-f", "nope.yaml"}, 1, "nope.yaml"},
		{"bad yaml", "kind: Pod\n---\n: [\n", []string{"inject", "-f", "-"}, 1, "-: document 1"},
		{"bad pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 3}\n", []string{"inject", "-f", "-"}, 1, "Pod p"},
		{"bad config", "", []string{"inject", "-f", "-", "--proxy-control-id", "control"}, 2, "spiffe://"},
		{"bad annotation warns", "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {causeway.dev/skip-inbound-ports: x}}\nspec: {containers: [{name: a, image: a}]}\n",
			[]string{"inject", "-f", "-"}, 0, `warning: -: document 0: pod default/p: Causeway sidecar not injected: annotation causeway.dev/skip-inbound-ports: port "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, _, errOut := causeway(t, c.stdin, c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, c.code, c.want)
			}
		})
	}
}

// TestInitRedirectDryRun: the init container's flags become the rule set
// internal/redirect renders, and bad flags are usage errors.
func TestInitRedirectDryRun(t *testing.T) {
	t.Parallel()
	uid := uint32(2102)
	cases := []struct {
		name string
		args []string
		code int
		want redirect.Rules // for code 0
		err  string         // for code != 0
	}{
		{"injected form", []string{"--inbound-port=4143", "--proxy-uid=2102", "--skip-inbound-sources=10.0.0.7", "--skip-inbound-ports=9090,22"}, 0,
			redirect.Rules{InboundPort: 4143, ProxyUID: &uid, SkipInboundSources: mustPrefixes(t, "10.0.0.7"), SkipInboundPorts: []uint16{22, 9090}}, ""},
		{"IPv6 node address dropped", []string{"--inbound-port=4143", "--skip-inbound-sources=fd00::7"}, 0,
			redirect.Rules{InboundPort: 4143}, ""},
		{"outbound", []string{"--outbound-port=4140", "--proxy-uid=2102", "--skip-outbound-cidrs=169.254.169.254"}, 0,
			redirect.Rules{OutboundPort: 4140, ProxyUID: &uid, SkipOutboundCIDRs: mustPrefixes(t, "169.254.169.254")}, ""},
		{"outbound without uid", []string{"--outbound-port=4140"}, 2, redirect.Rules{}, "proxyUID is required"},
		{"bad port", []string{"--inbound-port=4143", "--skip-inbound-ports=ssh"}, 2, redirect.Rules{}, "--skip-inbound-ports"},
		{"bad source", []string{"--inbound-port=4143", "--skip-inbound-sources=node"}, 2, redirect.Rules{}, "--skip-inbound-sources"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := causeway(t, "", append([]string{"init-redirect", "--dry-run"}, c.args...)...)
			if code != c.code {
				t.Fatalf("exit %d (%s), want %d", code, errOut, c.code)
			}
			if c.code != 0 {
				if !strings.Contains(errOut, c.err) {
					t.Errorf("stderr %q, want %q", errOut, c.err)
				}
				return
			}
			want, err := c.want.Render()
			if err != nil {
				t.Fatal(err)
			}
			if out != string(want) {
				t.Errorf("got\n%s\nwant\n%s", out, want)
			}
		})
	}
}

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	ps, err := redirect.ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// TestDeployControlPlaneArgs: the control plane's args in deploy/base parse
// with this binary's flags, so the manifest and the command cannot drift.
func TestDeployControlPlaneArgs(t *testing.T) {
	t.Parallel()
	data, err := deploy.FS.ReadFile("base/control-plane.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kubetest.Parse("base/control-plane.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range docs {
		if d.Obj.GetKind() != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Obj.Object, &dep); err != nil {
			t.Fatal(err)
		}
		for _, c := range dep.Spec.Template.Spec.Containers {
			if len(c.Args) == 0 || c.Args[0] != "control" {
				continue
			}
			found = true
			cmd, rest, err := newRootCmd().Find(c.Args)
			if err != nil || len(rest) == 0 {
				t.Fatalf("container %s: %v", c.Name, err)
			}
			if err := cmd.ParseFlags(c.Args[1:]); err != nil {
				t.Errorf("container %s args %v: %v", c.Name, c.Args, err)
			}
			if v, _ := cmd.Flags().GetString("webhook-listen"); v == "" {
				t.Errorf("container %s does not serve the sidecar-injector webhook", c.Name)
			}
		}
	}
	if !found {
		t.Fatal("no control container in deploy/base/control-plane.yaml")
	}
}
