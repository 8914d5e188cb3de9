package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Paths the webhook serves. The two webhooks of deploy/base/injector.yaml
// differ only in their selectors: one is called for pods of namespaces
// labelled causeway.dev/inject=enabled (PathNamespace: the namespace opted
// in), the other for pods labelled so in any other namespace (PathPod: the
// pod must opt in itself). The path is how the handler knows which, without
// reading the Namespace object.
const (
	PathNamespace = "/inject"
	PathPod       = "/inject/pod"
)

// maxReviewBytes bounds a request body. The apiserver caps objects at
// 3 MiB; an AdmissionReview carries one pod plus a little.
const maxReviewBytes = 4 << 20

// Webhook serves admission.k8s.io/v1 AdmissionReviews for pod CREATE and
// answers with the injection patch. It never denies a pod: a pod it cannot
// inject is allowed unchanged, with a warning kubectl prints.
type Webhook struct {
	Injector *Injector
	Logger   *slog.Logger // nil: slog.Default()
	// Timeout bounds one review (Service lookups included); 0 = 4s, under
	// the webhook configuration's timeoutSeconds of 5.
	Timeout time.Duration
}

// Handler routes PathNamespace and PathPod.
func (w *Webhook) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathNamespace, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, true) })
	mux.HandleFunc("POST "+PathPod, func(rw http.ResponseWriter, r *http.Request) { w.serve(rw, r, false) })
	return mux
}

func (w *Webhook) log() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.Default()
}

func (w *Webhook) serve(rw http.ResponseWriter, r *http.Request, nsOptedIn bool) {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		http.Error(rw, fmt.Sprintf("inject: Content-Type %q: want application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxReviewBytes))
	if err != nil {
		http.Error(rw, "inject: reading AdmissionReview: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	review, err := DecodeReview(body)
	if err != nil {
		// Without a valid request UID there is no response the apiserver
		// could match; it treats the 400 per the failurePolicy.
		w.log().Warn("inject: bad AdmissionReview", "path", r.URL.Path, "err", err)
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	timeout := w.Timeout
	if timeout == 0 {
		timeout = 4 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	resp := w.Review(ctx, review.Request, nsOptedIn)
	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp})
	if err != nil {
		http.Error(rw, err.Error(), http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_, _ = rw.Write(out)
}

// DecodeReview parses an admission.k8s.io/v1 AdmissionReview and checks
// that it is a request the injector answers: a pod (core/v1) CREATE, with a
// UID to echo.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&review); err != nil {
		return nil, fmt.Errorf("inject: AdmissionReview: %w", err)
	}
	if dec.More() {
		return nil, errors.New("inject: AdmissionReview: trailing data after the object")
	}
	switch {
	case review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview":
		return nil, fmt.Errorf("inject: AdmissionReview: apiVersion %q kind %q: want %s AdmissionReview", review.APIVersion, review.Kind, admissionv1.SchemeGroupVersion)
	case review.Request == nil:
		return nil, errors.New("inject: AdmissionReview: request is missing")
	case review.Request.UID == "":
		return nil, errors.New("inject: AdmissionReview: request.uid is empty")
	}
	return &review, nil
}

// Review answers one admission request. Anything but a pod CREATE, and any
// pod that cannot be injected, is allowed unchanged.
func (w *Webhook) Review(ctx context.Context, req *admissionv1.AdmissionRequest, nsOptedIn bool) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Kind.Group != "" || req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.SubResource != "" {
		resp.Warnings = []string{fmt.Sprintf("causeway injector: %s %s/%s %s is not a pod CREATE; allowed unchanged", req.Kind.Kind, req.Namespace, req.Name, req.Operation)}
		return resp
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		resp.Warnings = []string{fmt.Sprintf("causeway injector: pod %s/%s: cannot decode: %v; allowed without a sidecar", req.Namespace, req.Name, err)}
		return resp
	}
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}
	res := w.Injector.Pod(ctx, &pod, ns, nsOptedIn)
	resp.Warnings = res.Warnings
	if res.Pod == nil {
		w.log().Debug("inject: skipped", "pod", podName(&pod, ns), "reason", res.Skipped, "uid", req.UID)
		return resp
	}
	ops, err := Patch(&pod, res.Pod)
	if err == nil {
		resp.Patch, err = json.Marshal(ops)
	}
	if err != nil {
		resp.Warnings = append(resp.Warnings, fmt.Sprintf("causeway injector: pod %s: %v; allowed without a sidecar", podName(&pod, ns), err))
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	resp.Result = &metav1.Status{Status: metav1.StatusSuccess, Message: "causeway sidecar injected"}
	w.log().Info("inject: injected", "pod", podName(&pod, ns), "uid", req.UID, "dryRun", req.DryRun != nil && *req.DryRun)
	return resp
}
