package inject

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/proxy"
)

func testConfig() Config {
	return Config{
		Image:       "ghcr.io/causeway-mesh/causeway:test",
		ControlAddr: "causeway-control-plane.causeway-system.svc:15010",
		ControlID:   "spiffe://cluster.local/ns/causeway/sa/control",
	}
}

func newInjector(t testing.TB, c Config) *Injector {
	t.Helper()
	in, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func podYAML(t testing.TB, y string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := yaml.UnmarshalStrict([]byte(y), &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

const basicPod = `
metadata: {generateName: web-, labels: {app: web}}
spec:
  containers:
  - {name: web, image: nginx, ports: [{containerPort: 8080}]}
`

type fakeServices struct {
	names []string
	err   error
}

func (f fakeServices) PodServices(context.Context, string, map[string]string) ([]string, error) {
	return f.names, f.err
}

// TestPodDecision covers who is injected and who is not, and why.
func TestPodDecision(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		pod       string
		namespace string
		nsOptedIn bool
		injected  bool
		skipped   string // substring of Result.Skipped
		warning   string // substring of a warning; "" = no warning
	}{
		{"namespace opted in", basicPod, "shop", true, true, "", ""},
		{"namespace not opted in", basicPod, "shop", false, false, "neither the namespace", ""},
		{"pod label opts in", `
metadata: {name: a, labels: {causeway.dev/inject: enabled}}
spec: {containers: [{name: a, image: a}]}`, "shop", false, true, "", ""},
		{"pod annotation opts in", `
metadata: {name: a, annotations: {causeway.dev/inject: enabled}}
spec: {containers: [{name: a, image: a}]}`, "shop", false, true, "", ""},
		{"pod label opts out", `
metadata: {name: a, labels: {causeway.dev/inject: disabled}}
spec: {containers: [{name: a, image: a}]}`, "shop", true, false, "disabled", ""},
		{"pod annotation opts out", `
metadata: {name: a, annotations: {causeway.dev/inject: disabled}}
spec: {containers: [{name: a, image: a}]}`, "shop", true, false, "disabled", ""},
		{"unknown value is ignored with a warning", `
metadata: {name: a, annotations: {causeway.dev/inject: "true"}}
spec: {containers: [{name: a, image: a}]}`, "shop", true, true, "", `causeway.dev/inject="true" is neither`},
		{"kube-system never", basicPod, "kube-system", true, false, "never injected", ""},
		{"kube-system pod asking gets a warning", `
metadata: {name: a, labels: {causeway.dev/inject: enabled}}
spec: {containers: [{name: a, image: a}]}`, "kube-system", false, false, "never injected", "never injected"},
		{"hostNetwork", `
metadata: {name: a}
spec: {hostNetwork: true, containers: [{name: a, image: a}]}`, "shop", true, false, "hostNetwork", "hostNetwork"},
		{"sidecar added by hand", `
metadata: {name: a}
spec: {containers: [{name: a, image: a}, {name: causeway-proxy, image: b}]}`, "shop", true, false, "already injected", ""},
		{"init container name taken", `
metadata: {name: a}
spec: {initContainers: [{name: causeway-init, image: b}], containers: [{name: a, image: a}]}`, "shop", true, false, "already named causeway-init", "already named"},
		{"volume name taken", `
metadata: {name: a}
spec: {volumes: [{name: causeway-spiffe, emptyDir: {}}], containers: [{name: a, image: a}]}`, "shop", true, false, "volume is already named", "volume"},
		{"bad skip ports", `
metadata: {name: a, annotations: {causeway.dev/skip-inbound-ports: "80,http"}}
spec: {containers: [{name: a, image: a}]}`, "shop", true, false, "skip-inbound-ports", `port "http"`},
		{"bad services annotation still injects, warns", `
metadata: {name: a, annotations: {causeway.dev/services: "web"}}
spec: {containers: [{name: a, image: a}]}`, "shop", true, true, "", "not namespace/service"},
	}
	in := newInjector(t, testConfig())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			pod := podYAML(t, c.pod)
			before := pod.DeepCopy()
			res := in.Pod(context.Background(), pod, c.namespace, c.nsOptedIn)
			if got := res.Pod != nil; got != c.injected {
				t.Fatalf("injected = %v (skipped %q), want %v", got, res.Skipped, c.injected)
			}
			if !strings.Contains(res.Skipped, c.skipped) || (c.skipped == "") != (res.Skipped == "") {
				t.Errorf("Skipped = %q, want it to contain %q", res.Skipped, c.skipped)
			}
			warns := strings.Join(res.Warnings, "\n")
			if c.warning == "" && warns != "" || !strings.Contains(warns, c.warning) {
				t.Errorf("warnings = %q, want %q", warns, c.warning)
			}
			if c.warning != "" && !strings.Contains(warns, c.namespace+"/") {
				t.Errorf("warning %q does not name the pod", warns)
			}
			if !podEqual(pod, before) {
				t.Error("Pod modified its argument")
			}
		})
	}
}

func podEqual(a, b *corev1.Pod) bool {
	ya, _ := yaml.Marshal(a)
	yb, _ := yaml.Marshal(b)
	return string(ya) == string(yb)
}

// TestPodInjected checks what an injected pod holds, and that injecting it
// again changes nothing.
func TestPodInjected(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Services = fakeServices{names: []string{"shop/web", "shop/web-canary"}}
	in := newInjector(t, cfg)
	pod := podYAML(t, `
metadata: {generateName: web-, labels: {app: web}, annotations: {causeway.dev/skip-inbound-ports: "9090"}}
spec:
  initContainers: [{name: migrate, image: migrate}]
  containers:
  - {name: web, image: nginx, env: [{name: HTTP_PROXY, value: "http://corp:3128"}]}
  - {name: worker, image: worker}
`)
	res := in.Pod(context.Background(), pod, "shop", true)
	if res.Pod == nil {
		t.Fatalf("not injected: %s", res.Skipped)
	}
	p := res.Pod
	names := func(cs []corev1.Container) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	if got := names(p.Spec.InitContainers); !slices.Equal(got, []string{InitContainer, ProxyContainer, "migrate"}) {
		t.Errorf("init containers = %v", got)
	}
	init, sidecar := p.Spec.InitContainers[0], p.Spec.InitContainers[1]
	for _, want := range []string{"init-redirect", "--inbound-port=4143", "--proxy-uid=2102", "--skip-inbound-sources=$(HOST_IP)", "--skip-inbound-ports=9090"} {
		if !slices.Contains(init.Args, want) {
			t.Errorf("init args %v lack %q", init.Args, want)
		}
	}
	if caps := init.SecurityContext.Capabilities.Add; !slices.Equal(caps, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("init capabilities = %v", caps)
	}
	if sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("proxy is not a native sidecar (restartPolicy Always)")
	}
	for _, want := range []string{"proxy", "--control=" + cfg.ControlAddr, "--control-id=" + cfg.ControlID,
		"--spiffe-socket=unix:///spiffe-workload-api/spire-agent.sock", "--node=$(POD_NAME).$(POD_NAMESPACE)",
		"--service=shop/web", "--service=shop/web-canary"} {
		if !slices.Contains(sidecar.Args, want) {
			t.Errorf("proxy args %v lack %q", sidecar.Args, want)
		}
	}
	if *sidecar.SecurityContext.RunAsUser != DefaultProxyUID {
		t.Errorf("proxy uid = %d, want %d (the uid init-redirect exempts)", *sidecar.SecurityContext.RunAsUser, DefaultProxyUID)
	}
	env := func(c corev1.Container, name string) string {
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
		return "<unset>"
	}
	if got := env(p.Spec.Containers[0], "HTTP_PROXY"); got != "http://corp:3128" {
		t.Errorf("web HTTP_PROXY = %q, want the container's own", got)
	}
	if got := env(p.Spec.Containers[0], "http_proxy"); got != "http://127.0.0.1:4140" {
		t.Errorf("web http_proxy = %q", got)
	}
	if got := env(p.Spec.Containers[1], "HTTP_PROXY"); got != "http://127.0.0.1:4140" {
		t.Errorf("worker HTTP_PROXY = %q", got)
	}
	if got := p.Annotations[AnnotationServices]; got != "shop/web,shop/web-canary" {
		t.Errorf("services annotation = %q", got)
	}
	// The downward API volume exposes exactly the bootstrap annotation, and
	// that annotation is a bootstrap the proxy loads.
	var vol *corev1.Volume
	for i := range p.Spec.Volumes {
		if p.Spec.Volumes[i].Name == BootstrapVolume {
			vol = &p.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.DownwardAPI == nil || vol.DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.annotations['causeway.dev/proxy-bootstrap']" {
		t.Fatalf("bootstrap volume = %+v", vol)
	}
	file := filepath.Join(t.TempDir(), bootstrapFile)
	if err := os.WriteFile(file, []byte(p.Annotations[AnnotationBootstrap]), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := proxy.LoadBootstrap(file)
	if err != nil {
		t.Fatalf("proxy cannot load the injected bootstrap: %v", err)
	}
	if b.Inbound.Listen != "0.0.0.0:4143" || b.Outbound.HTTPProxy != "127.0.0.1:4140" || b.Admin != "127.0.0.1:9901" {
		t.Errorf("bootstrap = %+v", b)
	}

	again := in.Pod(context.Background(), p, "shop", true)
	if again.Pod != nil || again.Skipped != "already injected" {
		t.Errorf("second injection: skipped %q, pod %v; want a no-op", again.Skipped, again.Pod != nil)
	}
}

// TestServicesResolverError: a failing lookup still injects, with a warning.
func TestServicesResolverError(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.Services = fakeServices{err: errors.New("apiserver away")}
	res := newInjector(t, cfg).Pod(context.Background(), podYAML(t, basicPod), "shop", true)
	if res.Pod == nil || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "apiserver away") {
		t.Fatalf("pod injected %v, warnings %q", res.Pod != nil, res.Warnings)
	}
	for _, a := range res.Pod.Spec.InitContainers[1].Args {
		if strings.HasPrefix(a, "--service=") {
			t.Errorf("unexpected %s", a)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ok", func(*Config) {}, ""},
		{"no image", func(c *Config) { c.Image = "" }, "image is required"},
		{"no control", func(c *Config) { c.ControlAddr = "" }, "control address"},
		{"bad control id", func(c *Config) { c.ControlID = "control" }, "spiffe://"},
		{"same ports", func(c *Config) { c.HTTPProxyPort = DefaultInboundPort }, "also the inbound port"},
		{"csi and hostPath", func(c *Config) { c.SPIFFE = SPIFFESource{CSIDriver: "x", HostPath: "/run/spire"} }, "exclusive"},
		{"two token audiences", func(c *Config) { c.SPIFFE.TokenAudience = "causeway,vault" }, "one audience"},
		{"token audience with spaces", func(c *Config) { c.SPIFFE.TokenAudience = " causeway" }, "one audience"},
		{"token shorter than the apiserver allows", func(c *Config) { c.SPIFFE = SPIFFESource{TokenAudience: "causeway", TokenExpirationSeconds: 60} }, "minimum is 600"},
		{"socket path", func(c *Config) { c.SPIFFE.SocketName = "a/b.sock" }, "file name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			c.mod(&cfg)
			_, err := New(cfg)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("New: %v, want %q", err, c.want)
			}
		})
	}
}

// TestHostPathSPIFFE: the hostPath alternative mounts the agent's directory.
func TestHostPathSPIFFE(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.SPIFFE = SPIFFESource{HostPath: "/run/spire/agent-sockets", SocketName: "agent.sock"}
	res := newInjector(t, cfg).Pod(context.Background(), podYAML(t, basicPod), "shop", true)
	if res.Pod == nil {
		t.Fatal(res.Skipped)
	}
	v := res.Pod.Spec.Volumes[len(res.Pod.Spec.Volumes)-1]
	if v.Name != SPIFFEVolume || v.HostPath == nil || v.HostPath.Path != "/run/spire/agent-sockets" || v.CSI != nil {
		t.Errorf("spiffe volume = %+v", v)
	}
	if !slices.Contains(res.Pod.Spec.InitContainers[1].Args, "--spiffe-socket=unix:///spiffe-workload-api/agent.sock") {
		t.Errorf("proxy args = %v", res.Pod.Spec.InitContainers[1].Args)
	}
}

type fakeNamespaces struct {
	labels map[string]string
	err    error
}

func (f fakeNamespaces) NamespaceLabels(context.Context, string) (map[string]string, error) {
	return f.labels, f.err
}

// TestPodSecurity: where Pod Security would reject the init container, the
// pod is left alone (with a warning) so it can still start.
func TestPodSecurity(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		ns       fakeNamespaces
		injected bool
	}{
		{"privileged", fakeNamespaces{labels: map[string]string{podSecurityEnforce: "privileged"}}, true},
		{"no label", fakeNamespaces{}, true},
		{"baseline", fakeNamespaces{labels: map[string]string{podSecurityEnforce: "baseline"}}, false},
		{"restricted", fakeNamespaces{labels: map[string]string{podSecurityEnforce: "restricted"}}, false},
		{"unreadable: admission decides", fakeNamespaces{err: errors.New("forbidden")}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.Namespaces = c.ns
			res := newInjector(t, cfg).Pod(context.Background(), podYAML(t, basicPod), "shop", true)
			if (res.Pod != nil) != c.injected {
				t.Fatalf("injected = %v (%s), want %v", res.Pod != nil, res.Skipped, c.injected)
			}
			if !c.injected && (len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "NET_ADMIN")) {
				t.Errorf("warnings %q", res.Warnings)
			}
		})
	}
}
