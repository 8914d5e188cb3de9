package inject

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/deploy"
	"github.com/causeway-mesh/causeway/internal/kubetest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// kubeRun numbers the kube tests' runs; the apiserver outlives -count=N.
var kubeRun atomic.Int32

// warningLog records the warnings the apiserver relays (the webhook's
// AdmissionResponse.Warnings reach kubectl the same way).
type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// shippedInjector reads deploy/base/injector.yaml, the configuration users
// apply, and points its webhooks at url instead of the in-cluster Service,
// so these tests exercise the shipped selectors and policies.
func shippedInjector(t *testing.T, url string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	data, err := deploy.FS.ReadFile("base/injector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &mwc); err != nil {
		t.Fatalf("deploy/base/injector.yaml: %v", err)
	}
	if len(mwc.Webhooks) == 0 {
		t.Fatal("deploy/base/injector.yaml: no webhooks")
	}
	for i := range mwc.Webhooks {
		cc := &mwc.Webhooks[i].ClientConfig
		if cc.Service == nil || cc.Service.Path == nil {
			t.Fatalf("webhooks[%d]: want a service with a path", i)
		}
		u := url + *cc.Service.Path
		cc.URL, cc.Service = &u, nil
	}
	return &mwc
}

func hasSidecar(p *corev1.Pod) bool {
	return slices.ContainsFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == ProxyContainer })
}

// TestKubeAdmission runs the webhook against a real kube-apiserver: the
// shipped MutatingWebhookConfiguration (clientConfig.url to this process,
// caBundle published by PublishCABundle), pods created with client-go, and
// the stored pods inspected.
func TestKubeAdmission(t *testing.T) {
	cfg := kubetest.Config(t)
	warns := &warningLog{}
	cfg.WarningHandler = warns
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Names are per run, so -count=N reuses the apiserver.
	sfx := fmt.Sprintf("-%d", kubeRun.Add(1))
	on, off, restrictedNS := "inject-on"+sfx, "inject-off"+sfx, "inject-restricted"+sfx
	wcfg := testConfig()
	wcfg.Services = KubeServices{Client: client}
	wcfg.Namespaces = KubeNamespaces{Client: client}
	base, _, ca := serveWebhook(t, &Webhook{Injector: newInjector(t, wcfg)})
	mwc := shippedInjector(t, base)
	mwc.Name = "causeway-test-injector" + sfx
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	// Two replicas publish their CAs; both must stay, newest first. The
	// other replica's CA is an hour older so the order does not hang on
	// which second each was made in.
	other := mustCA(t, time.Now().Add(-time.Hour), 2*time.Hour)
	for _, p := range [][]byte{other.PEM(), ca.PEM(), ca.PEM()} {
		if err := PublishCABundle(ctx, client, mwc.Name, p, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	got, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, wh := range got.Webhooks {
		if want := bundleOf(ca, other); string(wh.ClientConfig.CABundle) != string(want) {
			t.Fatalf("webhooks[%d].caBundle holds %d bytes, want both replicas' CAs (%d bytes)", i, len(wh.ClientConfig.CABundle), len(want))
		}
	}

	for _, ns := range []struct {
		name   string
		labels map[string]string
	}{
		{on, map[string]string{AnnotationInject: ValueEnabled}},
		{restrictedNS, map[string]string{AnnotationInject: ValueEnabled, podSecurityEnforce: "restricted"}},
		{off, nil}, {"kube-system", nil},
	} {
		_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.name, Labels: ns.labels}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		// No controller-manager here: the ServiceAccount admission plugin
		// wants the default ServiceAccount to exist.
		_, err = client.CoreV1().ServiceAccounts(ns.name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: on},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := client.CoreV1().Services(on).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The apiserver picks up webhook configurations asynchronously: wait
	// until a dry-run pod comes back injected.
	waitInjected(t, ctx, client, on, true)

	pod := func(name string, labels, annotations map[string]string, hostNetwork bool) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name + sfx, Labels: labels, Annotations: annotations},
			Spec:       corev1.PodSpec{HostNetwork: hostNetwork, Containers: []corev1.Container{{Name: "app", Image: "nginx"}}},
		}
	}
	restricted := func(name string) *corev1.Pod {
		p := pod(name, nil, nil, false)
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(1000)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr(false),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
		return p
	}
	web := map[string]string{"app": "web"}
	enabled := map[string]string{AnnotationInject: ValueEnabled}
	disabled := map[string]string{AnnotationInject: ValueDisabled}
	cases := []struct {
		name     string
		ns       string
		pod      *corev1.Pod
		injected bool
		warning  string
	}{
		{"namespace opted in", on, pod("web", web, nil, false), true, ""},
		{"pod label disabled", on, pod("off-label", map[string]string{"app": "web", AnnotationInject: ValueDisabled}, nil, false), false, ""},
		{"pod annotation disabled", on, pod("off-annotation", web, disabled, false), false, ""},
		{"pod label enabled elsewhere", off, pod("on-label", enabled, nil, false), true, ""},
		{"neither opted in", off, pod("plain", nil, nil, false), false, ""},
		{"hostNetwork warned", on, pod("hostnet", nil, nil, true), false, "hostNetwork"},
		{"kube-system never", "kube-system", pod("sys", enabled, nil, false), false, ""},
		// Injected, the pod would be refused by Pod Security; uninjected,
		// it is admitted (this pod is otherwise restricted-compliant).
		{"restricted Pod Security", restrictedNS, restricted("strict"), false, "enforces Pod Security"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warns.take()
			created, err := client.CoreV1().Pods(c.ns).Create(ctx, c.pod, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			stored, err := client.CoreV1().Pods(c.ns).Get(ctx, created.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if hasSidecar(stored) != c.injected {
				t.Fatalf("stored pod %s/%s: sidecar %v, want %v", c.ns, stored.Name, hasSidecar(stored), c.injected)
			}
			ws := strings.Join(warns.take(), "\n")
			if !strings.Contains(ws, c.warning) || (c.warning == "") != (ws == "") {
				t.Errorf("warnings %q, want %q", ws, c.warning)
			}
			if !c.injected {
				// (The ServiceAccount admission plugin adds its token volume.)
				causewayVolume := slices.ContainsFunc(stored.Spec.Volumes, func(v corev1.Volume) bool { return strings.HasPrefix(v.Name, "causeway-") })
				if len(stored.Spec.InitContainers) != 0 || causewayVolume || stored.Annotations[AnnotationInjected] != "" ||
					slices.ContainsFunc(stored.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "HTTP_PROXY" }) {
					t.Errorf("untouched pod was changed: init %d, volumes %v, annotations %v", len(stored.Spec.InitContainers), stored.Spec.Volumes, stored.Annotations)
				}
				return
			}
			checkStoredInjected(t, stored, c.ns, c.ns == on)
		})
	}

	// failurePolicy: deploy/base ships Ignore. With the webhook gone, pods
	// still start (without a sidecar); with Fail, they would not.
	t.Run("webhook down", func(t *testing.T) {
		dead := deadURL(t)
		for _, policy := range []admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Ignore, admissionregistrationv1.Fail} {
			cur, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwc.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range cur.Webhooks {
				u := dead + PathNamespace
				cur.Webhooks[i].ClientConfig.URL = &u
				cur.Webhooks[i].FailurePolicy = &policy
			}
			if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if policy == admissionregistrationv1.Ignore {
				waitInjected(t, ctx, client, on, false)
				p, err := client.CoreV1().Pods(on).Create(ctx, pod("while-down", web, nil, false), metav1.CreateOptions{})
				if err != nil {
					t.Fatalf("failurePolicy Ignore: pod refused while the webhook is down: %v", err)
				}
				if hasSidecar(p) {
					t.Error("pod injected by a webhook that is down")
				}
				continue
			}
			var refused error
			err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				_, err := client.CoreV1().Pods(on).Create(ctx, pod("refused", web, nil, false), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				refused = err
				return err != nil, nil
			})
			if err != nil {
				t.Fatal("failurePolicy Fail: pods still admitted with the webhook down")
			}
			if !strings.Contains(refused.Error(), "failed calling webhook") {
				t.Errorf("refused for another reason: %v", refused)
			}
		}
	})
}

// checkStoredInjected looks at what the apiserver stored, after its own
// defaulting and validation of the patched pod.
func checkStoredInjected(t *testing.T, p *corev1.Pod, ns string, hasService bool) {
	t.Helper()
	if len(p.Spec.InitContainers) < 2 || p.Spec.InitContainers[0].Name != InitContainer || p.Spec.InitContainers[1].Name != ProxyContainer {
		t.Fatalf("init containers: %v", p.Spec.InitContainers)
	}
	var vols []string
	for _, v := range p.Spec.Volumes {
		vols = append(vols, v.Name)
	}
	if !slices.Contains(vols, BootstrapVolume) || !slices.Contains(vols, SPIFFEVolume) {
		t.Errorf("volumes %v", vols)
	}
	if p.Annotations[AnnotationInjected] != "true" || p.Annotations[AnnotationBootstrap] == "" {
		t.Errorf("annotations %v", p.Annotations)
	}
	if hasService && p.Labels["app"] == "web" {
		if p.Annotations[AnnotationServices] != ns+"/web" || !slices.Contains(p.Spec.InitContainers[1].Args, "--service="+ns+"/web") {
			t.Errorf("Service %s/web not resolved: annotation %q, args %v", ns, p.Annotations[AnnotationServices], p.Spec.InitContainers[1].Args)
		}
	}
	if !slices.ContainsFunc(p.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "HTTP_PROXY" }) {
		t.Error("app container has no HTTP_PROXY")
	}
}

// waitInjected waits until a dry-run pod in ns comes back with (or without)
// the sidecar: the apiserver has loaded the latest webhook configuration.
func waitInjected(t *testing.T, ctx context.Context, client kubernetes.Interface, ns string, want bool) {
	t.Helper()
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "a"}}}}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			last = err
			return false, nil
		}
		return hasSidecar(p) == want, nil
	})
	if err != nil {
		t.Fatalf("waiting for a dry-run pod in %s to be injected=%v: %v (last error %v)", ns, want, err, last)
	}
}

// deadURL is an https URL on a loopback port nobody listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return fmt.Sprintf("https://%s", addr)
}

var _ rest.WarningHandler = (*warningLog)(nil)

// TestKubePublishConcurrent: replicas starting together each add their CA;
// the resourceVersion guard makes losers retry, so none is lost.
func TestKubePublishConcurrent(t *testing.T) {
	cfg := kubetest.Config(t)
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mwc := shippedInjector(t, "https://127.0.0.1:1")
	mwc.Name = fmt.Sprintf("causeway-test-publish-%d", kubeRun.Add(1))
	// Nothing matches: this configuration must not affect other tests' pods.
	for i := range mwc.Webhooks {
		mwc.Webhooks[i].ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"causeway.dev/test": "never"}}
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	cas := make([]*WebhookCA, MaxBundle)
	for i := range cas {
		cas[i] = mustCA(t, time.Now(), time.Hour)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cas))
	for i, ca := range cas {
		wg.Go(func() { errs[i] = PublishCABundle(ctx, client, mwc.Name, ca.PEM(), time.Now()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	got, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwc.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, wh := range got.Webhooks {
		certs, err := parsePEMCerts(wh.ClientConfig.CABundle)
		if err != nil {
			t.Fatal(err)
		}
		for j, ca := range cas {
			if !slices.ContainsFunc(certs, ca.Certificate().Equal) {
				t.Errorf("webhooks[%d].caBundle lost replica %d's CA (%d certificates)", i, j, len(certs))
			}
		}
	}
}
