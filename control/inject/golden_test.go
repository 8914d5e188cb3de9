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
		// spiffe, if set, replaces the SPIRE CSI default: Causeway's node
		// agent, whose callers prove themselves with a projected token.
		spiffe *SPIFFESource
	}{
		{"default", "", 0, "127.0.0.1:4140", "", false, false, nil},
		{"http-proxy", ValueHTTPProxy, 0, "127.0.0.1:4140", "", false, false, nil},
		{"transparent", ValueTransparent, 0, "", "127.0.0.1:15001", true, true, nil},
		{"unknown-mode", "sideways", 1, "127.0.0.1:4140", "", false, false, nil},
		{"causeway-workload-api", "", 0, "127.0.0.1:4140", "", false, false,
			&SPIFFESource{HostPath: "/run/causeway/sockets", SocketName: "api.sock", TokenAudience: "causeway"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Services = fakeServices{names: []string{"shop/web"}}
			if c.spiffe != nil {
				cfg.SPIFFE = *c.spiffe
			}
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
			checkToken(t, res.Pod, c.spiffe)
			hasProxyEnv := slices.ContainsFunc(res.Pod.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "HTTP_PROXY" })
			if hasProxyEnv != (c.httpProxy != "") {
				t.Errorf("app env %v: HTTP_PROXY set = %v, want %v", res.Pod.Spec.Containers[0].Env, hasProxyEnv, c.httpProxy != "")
			}
		})
	}
}

// checkToken: with a token audience the proxy, and only the proxy, mounts a
// projected token for that audience and is told where it is; without one
// there is no token at all.
func checkToken(t *testing.T, pod *corev1.Pod, s *SPIFFESource) {
	t.Helper()
	want := s != nil && s.TokenAudience != ""
	var vol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == TokenVolume {
			vol = &pod.Spec.Volumes[i]
		}
	}
	if (vol != nil) != want {
		t.Fatalf("token volume present = %v, want %v", vol != nil, want)
	}
	proxyC := pod.Spec.InitContainers[1]
	hasArg := slices.Contains(proxyC.Args, "--spiffe-token-file="+tokenMountPath+"/"+tokenFile)
	hasMount := slices.ContainsFunc(proxyC.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == TokenVolume })
	if hasArg != want || hasMount != want {
		t.Errorf("proxy --spiffe-token-file = %v, token mount = %v; want %v", hasArg, hasMount, want)
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers[:1], pod.Spec.InitContainers[2:], pod.Spec.Containers} {
		for _, c := range cs {
			if slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == TokenVolume }) {
				t.Errorf("container %s mounts the proxy's token", c.Name)
			}
		}
	}
	if !want {
		return
	}
	p := vol.Projected
	if p == nil || len(p.Sources) != 1 || p.Sources[0].ServiceAccountToken == nil {
		t.Fatalf("token volume %+v: want one projected serviceAccountToken", vol.VolumeSource)
	}
	tok := p.Sources[0].ServiceAccountToken
	if tok.Audience != s.TokenAudience || tok.ExpirationSeconds == nil || *tok.ExpirationSeconds != DefaultTokenExpirationSeconds || tok.Path != tokenFile {
		t.Errorf("projected token %+v: want audience %q, %ds, path %q", tok, s.TokenAudience, DefaultTokenExpirationSeconds, tokenFile)
	}
}
