package inject

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/proxy"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the injector's output")

// TestInjectedPodGolden pins the whole injected pod for each outbound mode,
// so any change to what a pod gets shows up in review as a diff of
// testdata/*.golden.yaml (go test ./control/inject -run Golden -update).
func TestInjectedPodGolden(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		annotation string // causeway.dev/outbound; "" leaves it unset
		warnings   int
		// What the bootstrap must say, checked through proxy.LoadBootstrap
		// so the data plane reads what the golden file shows.
		httpProxy, transparent string
		inboundTransparent     bool
		outboundPort           bool // init-redirect gets --outbound-port
	}{
		{"default", "", 0, "127.0.0.1:4140", "", false, false},
		{"http-proxy", ValueHTTPProxy, 0, "127.0.0.1:4140", "", false, false},
		{"transparent", ValueTransparent, 0, "", "127.0.0.1:15001", true, true},
		{"unknown-mode", "sideways", 1, "127.0.0.1:4140", "", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Services = fakeServices{names: []string{"shop/web"}}
			in := newInjector(t, cfg)
			pod := podYAML(t, basicPod)
			if c.annotation != "" {
				pod.Annotations = map[string]string{AnnotationOutbound: c.annotation}
			}
			res := in.Pod(context.Background(), pod, "shop", true)
			if res.Pod == nil {
				t.Fatalf("not injected: %s", res.Skipped)
			}
			if len(res.Warnings) != c.warnings {
				t.Errorf("warnings = %q, want %d", res.Warnings, c.warnings)
			}
			got, err := yaml.Marshal(res.Pod)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "pod-"+c.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("injected pod differs from %s (run with -update and review the diff):\n%s", golden, got)
			}

			file := filepath.Join(t.TempDir(), bootstrapFile)
			if err := os.WriteFile(file, []byte(res.Pod.Annotations[AnnotationBootstrap]), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := proxy.LoadBootstrap(file)
			if err != nil {
				t.Fatalf("proxy cannot load the injected bootstrap: %v", err)
			}
			if b.Outbound.HTTPProxy != c.httpProxy || b.Outbound.Transparent != c.transparent || b.Inbound.Transparent != c.inboundTransparent {
				t.Errorf("bootstrap outbound = %+v, inbound = %+v", b.Outbound, b.Inbound)
			}
			if got := slices.Contains(res.Pod.Spec.InitContainers[0].Args, "--outbound-port=15001"); got != c.outboundPort {
				t.Errorf("init args %v: --outbound-port=15001 present = %v, want %v", res.Pod.Spec.InitContainers[0].Args, got, c.outboundPort)
			}
			hasProxyEnv := slices.ContainsFunc(res.Pod.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "HTTP_PROXY" })
			if hasProxyEnv != (c.httpProxy != "") {
				t.Errorf("app env %v: HTTP_PROXY set = %v, want %v", res.Pod.Spec.Containers[0].Env, hasProxyEnv, c.httpProxy != "")
			}
		})
	}
}
