package inject

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/causeway-mesh/causeway/internal/redirect"
)

// Injector adds the Causeway sidecar to pods. It holds no state besides its
// Config and is safe for concurrent use.
type Injector struct {
	cfg Config
}

// New checks c and returns an Injector.
func New(c Config) (*Injector, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &Injector{cfg: c.withDefaults()}, nil
}

// Result is what Pod decided.
type Result struct {
	// Pod is the injected copy; nil when the pod is left as it is.
	Pod *corev1.Pod
	// Skipped says why the pod was left alone ("" when injected).
	Skipped string
	// Warnings are for the user: the webhook returns them to kubectl, the
	// inject command prints them. A pod that opted in but cannot be
	// injected gets one.
	Warnings []string
}

// systemNamespaces are never injected: the cluster's own pods must start
// even when the mesh is broken.
var systemNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// optIn reads the pod's causeway.dev/inject label, then annotation.
func optIn(pod *corev1.Pod) (string, bool) {
	if v, ok := pod.Labels[AnnotationInject]; ok {
		return v, true
	}
	v, ok := pod.Annotations[AnnotationInject]
	return v, ok
}

// Injected reports whether pod already has the sidecar (by annotation, or
// by a container of the injector's names added some other way).
func Injected(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[AnnotationInjected]; ok {
		return true
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == ProxyContainer {
				return true
			}
		}
	}
	return false
}

// Pod decides whether pod (in namespace; pod.Namespace may still be empty
// at admission) is injected, and injects a copy. nsOptedIn says the
// namespace asked for injection; otherwise the pod must opt in itself. pod
// is never modified.
func (in *Injector) Pod(ctx context.Context, pod *corev1.Pod, namespace string, nsOptedIn bool) Result {
	name := podName(pod, namespace)
	v, set := optIn(pod)
	var warnings []string
	if set && v != ValueEnabled && v != ValueDisabled {
		warnings = append(warnings, fmt.Sprintf("pod %s: %s=%q is neither %q nor %q; ignored", name, AnnotationInject, v, ValueEnabled, ValueDisabled))
		set = false
	}
	skip := func(why string, warn bool) Result {
		if warn {
			warnings = append(warnings, fmt.Sprintf("pod %s: Causeway sidecar not injected: %s", name, why))
		}
		return Result{Skipped: why, Warnings: warnings}
	}
	switch {
	case slices.Contains(systemNamespaces, namespace):
		return skip("namespace "+namespace+" is never injected", set && v == ValueEnabled)
	case set && v == ValueDisabled:
		return skip(AnnotationInject+"="+ValueDisabled, false)
	case Injected(pod):
		return skip("already injected", false)
	case !nsOptedIn && !(set && v == ValueEnabled):
		return skip("neither the namespace nor the pod has "+AnnotationInject+"="+ValueEnabled, false)
	case pod.Spec.HostNetwork:
		// The init step would rewrite the node's own netfilter rules.
		return skip("hostNetwork pods share the node's network; their traffic cannot be redirected", true)
	}
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			if c.Name == InitContainer {
				return skip("a container is already named "+InitContainer, true)
			}
		}
	}
	for _, vol := range pod.Spec.Volumes {
		if vol.Name == BootstrapVolume || vol.Name == SPIFFEVolume || vol.Name == TokenVolume {
			return skip("a volume is already named "+vol.Name, true)
		}
	}
	if why := in.podSecurity(ctx, namespace); why != "" {
		return skip(why, true)
	}
	skipPorts, err := redirect.ParsePorts(pod.Annotations[AnnotationSkipInboundPorts])
	if err != nil {
		return skip(fmt.Sprintf("annotation %s: %v", AnnotationSkipInboundPorts, err), true)
	}
	transparent := false
	switch mode := pod.Annotations[AnnotationOutbound]; mode {
	case "", ValueHTTPProxy:
	case ValueTransparent:
		transparent = true
	default:
		// Injected with the default: the pod still works through
		// HTTP_PROXY, and the warning says why it is not transparent.
		warnings = append(warnings, fmt.Sprintf("pod %s: %s=%q is neither %q nor %q; using %q", name, AnnotationOutbound, mode, ValueHTTPProxy, ValueTransparent, ValueHTTPProxy))
	}
	services, err := in.services(ctx, pod, namespace)
	if err != nil {
		// Injected all the same: the proxy still gets its identity and
		// outbound routing; inbound needs the Services named.
		warnings = append(warnings, fmt.Sprintf("pod %s: %v; the proxy starts with no inbound services (set the %s annotation)", name, err, AnnotationServices))
	}
	out := pod.DeepCopy()
	in.mutate(out, skipPorts, services, transparent)
	return Result{Pod: out, Warnings: warnings}
}

// podSecurityEnforce is the Pod Security admission label; at baseline or
// restricted it rejects the init container's NET_ADMIN and NET_RAW, and with
// it the whole pod. Leaving the pod uninjected lets it start.
const podSecurityEnforce = "pod-security.kubernetes.io/enforce"

// podSecurity says why the namespace's Pod Security level forbids
// injection, or "" when it allows it (or cannot be read: the pod is then
// injected and admission has the last word).
func (in *Injector) podSecurity(ctx context.Context, namespace string) string {
	if in.cfg.Namespaces == nil {
		return ""
	}
	labels, err := in.cfg.Namespaces.NamespaceLabels(ctx, namespace)
	if err != nil {
		return ""
	}
	switch level := labels[podSecurityEnforce]; level {
	case "baseline", "restricted":
		return fmt.Sprintf("namespace %s enforces Pod Security %q, which forbids the %s container's NET_ADMIN and NET_RAW capabilities", namespace, level, InitContainer)
	}
	return ""
}

func podName(pod *corev1.Pod, namespace string) string {
	n := pod.Name
	if n == "" && pod.GenerateName != "" {
		n = pod.GenerateName + "*"
	}
	return namespace + "/" + n
}

// services returns the pod's Services: its annotation, else the resolver's
// answer. Each is checked to be ns/name, as `causeway proxy --service` wants.
func (in *Injector) services(ctx context.Context, pod *corev1.Pod, namespace string) ([]string, error) {
	var out []string
	if a, ok := pod.Annotations[AnnotationServices]; ok {
		for s := range strings.SplitSeq(a, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	} else if in.cfg.Services != nil {
		var err error
		out, err = in.cfg.Services.PodServices(ctx, namespace, pod.Labels)
		if err != nil {
			return nil, fmt.Errorf("resolving its Services: %w", err)
		}
	}
	for i, s := range out {
		ns, n, ok := strings.Cut(s, "/")
		if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1035Label(n)) > 0 {
			return nil, fmt.Errorf("annotation %s[%d]: %q is not namespace/service", AnnotationServices, i, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// bootstrap is the proxy's bootstrap file (proxy.Bootstrap's JSON form).
// Written as a map so this package does not import the data plane; the
// tests load it with proxy.LoadBootstrap.
// In transparent mode the outbound side is the transparent listener
// instead of the forward proxy, and the inbound side passes unmeshed
// clients through (proxy/doc.go, "Transparent mode").
func (in *Injector) bootstrap(transparent bool) string {
	inbound := map[string]any{"listen": fmt.Sprintf("0.0.0.0:%d", in.cfg.InboundPort), "appHost": "127.0.0.1"}
	outbound := map[string]any{"httpProxy": fmt.Sprintf("127.0.0.1:%d", in.cfg.HTTPProxyPort)}
	if transparent {
		inbound["transparent"] = true
		outbound = map[string]any{"transparent": fmt.Sprintf("127.0.0.1:%d", in.cfg.TransparentPort)}
	}
	b, _ := json.Marshal(map[string]any{
		"admin":    fmt.Sprintf("127.0.0.1:%d", in.cfg.AdminPort),
		"inbound":  inbound,
		"outbound": outbound,
	})
	return string(b)
}

func (in *Injector) mutate(pod *corev1.Pod, skipPorts []uint16, services []string, transparent bool) {
	c := in.cfg
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationInjected] = "true"
	pod.Annotations[AnnotationProxyImage] = c.Image
	pod.Annotations[AnnotationBootstrap] = in.bootstrap(transparent)
	if _, ok := pod.Annotations[AnnotationServices]; !ok && len(services) > 0 {
		pod.Annotations[AnnotationServices] = strings.Join(services, ",")
	}

	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
		Name: BootstrapVolume,
		VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     bootstrapFile,
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnotationBootstrap + "']"},
			}},
		}},
	}, in.spiffeVolume())
	if c.SPIFFE.TokenAudience != "" {
		pod.Spec.Volumes = append(pod.Spec.Volumes, in.tokenVolume())
	}

	// Both go first: the redirect must be in place before any other
	// container opens a socket, and the proxy (a native sidecar: an init
	// container that keeps running) must be up before the app starts.
	pod.Spec.InitContainers = append([]corev1.Container{in.initContainer(skipPorts, transparent), in.proxyContainer(services)}, pod.Spec.InitContainers...)

	if transparent {
		return // the redirect brings the app's connections; no HTTP_PROXY
	}
	proxyURL := fmt.Sprintf("http://127.0.0.1:%d", c.HTTPProxyPort)
	for i := range pod.Spec.Containers {
		addEnv(&pod.Spec.Containers[i],
			corev1.EnvVar{Name: "HTTP_PROXY", Value: proxyURL},
			corev1.EnvVar{Name: "http_proxy", Value: proxyURL},
			corev1.EnvVar{Name: "NO_PROXY", Value: "localhost,127.0.0.1,::1"},
			corev1.EnvVar{Name: "no_proxy", Value: "localhost,127.0.0.1,::1"},
		)
	}
}

// addEnv adds each variable the container does not set already: the app's
// own proxy settings win.
func addEnv(c *corev1.Container, vars ...corev1.EnvVar) {
	for _, v := range vars {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == v.Name }) {
			c.Env = append(c.Env, v)
		}
	}
}

func (in *Injector) spiffeVolume() corev1.Volume {
	s := in.cfg.SPIFFE
	if s.HostPath != "" {
		dir := corev1.HostPathDirectory
		return corev1.Volume{Name: SPIFFEVolume, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: s.HostPath, Type: &dir}}}
	}
	return corev1.Volume{Name: SPIFFEVolume, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: s.CSIDriver, ReadOnly: ptr(true)}}}
}

// tokenVolume is the proxy's projected ServiceAccount token: bound to the
// pod (deleting the pod revokes it), for Causeway's audience only (it opens
// nothing at the apiserver, and no other service's token is accepted by the
// node agent), renewed in place by the kubelet. Only the proxy mounts it, so
// the kubelet gives the file to the proxy's uid with mode 0600.
func (in *Injector) tokenVolume() corev1.Volume {
	s := in.cfg.SPIFFE
	return corev1.Volume{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
			Audience: s.TokenAudience, ExpirationSeconds: ptr(s.TokenExpirationSeconds), Path: tokenFile,
		}}},
	}}}
}

func (in *Injector) initContainer(skipPorts []uint16, transparent bool) corev1.Container {
	c := in.cfg
	args := []string{"init-redirect",
		"--inbound-port=" + strconv.Itoa(int(c.InboundPort)),
		"--proxy-uid=" + strconv.FormatInt(c.ProxyUID, 10),
		// Kubelet probes come from the node's address and are plaintext,
		// which the proxy's inbound listener refuses.
		"--skip-inbound-sources=$(HOST_IP)",
	}
	if len(skipPorts) > 0 {
		ps := make([]string, len(skipPorts))
		for i, p := range skipPorts {
			ps[i] = strconv.Itoa(int(p))
		}
		args = append(args, "--skip-inbound-ports="+strings.Join(ps, ","))
	}
	if transparent {
		// The proxy's uid (--proxy-uid above) is exempt, so its own
		// upstream connections are not sent back to it.
		args = append(args, "--outbound-port="+strconv.Itoa(int(c.TransparentPort)))
	}
	return corev1.Container{
		Name:            InitContainer,
		Image:           c.Image,
		ImagePullPolicy: c.PullPolicy,
		Args:            args,
		Env:             []corev1.EnvVar{{Name: "HOST_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}}},
		// iptables needs uid 0 with NET_ADMIN (and NET_RAW for some
		// matches) in the pod's network namespace only; nothing else.
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
		},
		Resources: resources("10m", "16Mi", "64Mi"),
	}
}

func (in *Injector) proxyContainer(services []string) corev1.Container {
	c := in.cfg
	args := []string{"proxy",
		"--config=" + bootstrapDir + "/" + bootstrapFile,
		"--control=" + c.ControlAddr,
		"--control-id=" + c.ControlID,
		"--spiffe-socket=unix://" + spiffeMountPath + "/" + c.SPIFFE.SocketName,
		"--node=" + defaultNodeFormat,
		// The pod's IP: the control plane then serves every Service with an
		// endpoint there, including Services created after admission.
		"--address=$(POD_IP)",
	}
	mounts := []corev1.VolumeMount{
		{Name: BootstrapVolume, MountPath: bootstrapDir, ReadOnly: true},
		{Name: SPIFFEVolume, MountPath: spiffeMountPath, ReadOnly: true},
	}
	if c.SPIFFE.TokenAudience != "" {
		args = append(args, "--spiffe-token-file="+tokenMountPath+"/"+tokenFile)
		mounts = append(mounts, corev1.VolumeMount{Name: TokenVolume, MountPath: tokenMountPath, ReadOnly: true})
	}
	for _, s := range services {
		args = append(args, "--service="+s)
	}
	always := corev1.ContainerRestartPolicyAlways
	return corev1.Container{
		Name:            ProxyContainer,
		Image:           c.Image,
		ImagePullPolicy: c.PullPolicy,
		Args:            args,
		RestartPolicy:   &always,
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
			{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
		},
		Ports: []corev1.ContainerPort{{Name: "causeway-in", ContainerPort: c.InboundPort, Protocol: corev1.ProtocolTCP}},
		// The app starts once the inbound listener is bound, which the proxy
		// does after it has its SVID. The admin server is loopback-only, so
		// kubelet probes the inbound port (its own traffic is not redirected).
		StartupProbe: &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(c.InboundPort)}},
			PeriodSeconds:    1,
			FailureThreshold: 120,
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(c.ProxyUID),
			RunAsGroup:               ptr(c.ProxyUID),
			RunAsNonRoot:             ptr(true),
			ReadOnlyRootFilesystem:   ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Resources:    resources("50m", "32Mi", "256Mi"),
		VolumeMounts: mounts,
	}
}

func resources(cpu, mem, memLimit string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memLimit)},
	}
}

func ptr[T any](v T) *T { return &v }
