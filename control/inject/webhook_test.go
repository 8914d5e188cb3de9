package inject

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// serveWebhook serves w over TLS on a loopback port with a certificate from
// a fresh WebhookCA, and returns its base URL and a client trusting the CA.
func serveWebhook(t testing.TB, w *Webhook) (string, *http.Client, *WebhookCA) {
	t.Helper()
	ca, err := NewWebhookCA(time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := ca.ServingConfig(time.Hour, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	if w.Logger == nil {
		w.Logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(client.CloseIdleConnections)
	return "https://" + ln.Addr().String(), client, ca
}

func review(t testing.TB, kind metav1.GroupVersionKind, op admissionv1.Operation, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "3f1b-uid", Kind: kind, Operation: op, Namespace: "shop",
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Object:   runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var podKind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}

// TestWebhookHTTP sends AdmissionReviews over real TLS and applies the
// returned JSON Patch to the pod the way the apiserver does: the result must
// be exactly the Injector's pod.
func TestWebhookHTTP(t *testing.T) {
	t.Parallel()
	in := newInjector(t, testConfig())
	base, client, _ := serveWebhook(t, &Webhook{Injector: in})
	pod := podYAML(t, basicPod)
	optedIn := podYAML(t, `
metadata: {name: a, labels: {causeway.dev/inject: enabled}}
spec: {containers: [{name: a, image: a}]}`)
	cases := []struct {
		name        string
		path        string
		contentType string
		body        []byte
		status      int
		patched     *corev1.Pod // the pod the patch applies to; nil = no patch
		warning     string
	}{
		{"namespace path injects", PathNamespace, "application/json", review(t, podKind, admissionv1.Create, pod), 200, pod, ""},
		{"pod path needs the pod's opt-in", PathPod, "application/json", review(t, podKind, admissionv1.Create, pod), 200, nil, ""},
		{"pod path with the pod's opt-in", PathPod, "application/json", review(t, podKind, admissionv1.Create, optedIn), 200, optedIn, ""},
		{"not a pod", PathNamespace, "application/json", review(t, metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, admissionv1.Create, pod), 200, nil, "not a pod CREATE"},
		{"update", PathNamespace, "application/json", review(t, podKind, admissionv1.Update, pod), 200, nil, "not a pod CREATE"},
		{"undecodable pod", PathNamespace, "application/json", review(t, podKind, admissionv1.Create, map[string]any{"spec": "nope"}), 200, nil, "cannot decode"},
		{"content type", PathNamespace, "text/plain", review(t, podKind, admissionv1.Create, pod), 415, nil, ""},
		{"not json", PathNamespace, "application/json", []byte("{"), 400, nil, ""},
		{"wrong version", PathNamespace, "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}`), 400, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			resp, err := client.Post(base+c.path, c.contentType, bytes.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, c.status)
			}
			if c.status != 200 {
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || r == nil || r.UID != "3f1b-uid" || !r.Allowed {
				t.Fatalf("response %s", body)
			}
			if ws := strings.Join(r.Warnings, "\n"); !strings.Contains(ws, c.warning) || (c.warning == "") != (ws == "") {
				t.Errorf("warnings %q, want %q", ws, c.warning)
			}
			if c.patched == nil {
				if r.Patch != nil || r.PatchType != nil {
					t.Errorf("unexpected patch %s", r.Patch)
				}
				return
			}
			if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("patch type %v", r.PatchType)
			}
			p, err := jsonpatch.DecodePatch(r.Patch)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := json.Marshal(c.patched)
			patched, err := p.Apply(orig)
			if err != nil {
				t.Fatalf("apply patch %s: %v", r.Patch, err)
			}
			var got corev1.Pod
			if err := json.Unmarshal(patched, &got); err != nil {
				t.Fatal(err)
			}
			want := in.Pod(context.Background(), c.patched, "shop", c.path == PathNamespace).Pod
			if !podEqual(&got, want) {
				t.Errorf("patched pod differs from the injector's:\n%s", r.Patch)
			}
		})
	}
}

// TestServingCertRenews: the serving certificate is reissued once two
// thirds of its life have passed, and verifies against the CA for the
// Service's names.
func TestServingCertRenews(t *testing.T) {
	t.Parallel()
	start := time.Now()
	ca, err := NewWebhookCA(start, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	names := ServiceDNSNames("causeway-control-plane", "causeway-system")
	r := &renewing{ca: ca, ttl: 3 * time.Hour, dns: names, now: func() time.Time { return start }}
	first, err := r.get(nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	if _, err := first.Leaf.Verify(x509.VerifyOptions{DNSName: "causeway-control-plane.causeway-system.svc", Roots: pool, CurrentTime: start}); err != nil {
		t.Fatalf("serving cert does not verify for the Service name: %v", err)
	}
	steps := []struct {
		after time.Duration
		same  bool
	}{{time.Hour, true}, {2*time.Hour + 5*time.Minute, false}}
	for _, s := range steps {
		r.now = func() time.Time { return start.Add(s.after) }
		c, err := r.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		if (c == first) != s.same {
			t.Errorf("after %v: reissued = %v, want %v", s.after, c != first, !s.same)
		}
	}
	// Never beyond the CA.
	late, err := ca.Issue(start.Add(23*time.Hour), 3*time.Hour, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	if late.Leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Errorf("leaf outlives its CA: %v > %v", late.Leaf.NotAfter, ca.Certificate().NotAfter)
	}
}
