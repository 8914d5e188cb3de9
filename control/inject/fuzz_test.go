package inject

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// FuzzDecodeReview: any body either fails to decode with an error or yields
// a review whose answer echoes its UID, allows the pod, and whose patch (if
// any) is valid JSON; decoding what we re-encode gives the same request UID.
func FuzzDecodeReview(f *testing.F) {
	f.Add(review(f, podKind, admissionv1.Create, podYAML(f, basicPod)))
	f.Add(review(f, podKind, admissionv1.Update, podYAML(f, basicPod)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"hostNetwork":true}}}}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":null}} {}`))
	w := &Webhook{Injector: newInjector(f, testConfig()), Logger: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, body []byte) {
		rv, err := DecodeReview(body)
		if err != nil {
			if rv != nil {
				t.Fatal("review returned with an error")
			}
			return
		}
		resp := w.Review(context.Background(), rv.Request, true)
		if resp.UID != rv.Request.UID || !resp.Allowed {
			t.Fatalf("response uid %q allowed %v for request %q", resp.UID, resp.Allowed, rv.Request.UID)
		}
		if resp.Patch != nil && !json.Valid(resp.Patch) {
			t.Fatalf("invalid patch %q", resp.Patch)
		}
		again, err := json.Marshal(rv)
		if err != nil {
			t.Fatal(err)
		}
		rv2, err := DecodeReview(again)
		if err != nil || rv2.Request.UID != rv.Request.UID {
			t.Fatalf("round trip: %v (uid %q)", err, rv.Request.UID)
		}
	})
}
