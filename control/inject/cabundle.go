package inject

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// MaxBundle is how many CA certificates PublishCABundle keeps in a caBundle.
// Each control-plane replica has its own webhook CA; the apiserver may call
// any replica, so the bundle holds them all: the newest MaxBundle unexpired
// ones (a replica restarted with an empty volume leaves its old CA behind
// until it is crowded out or expires).
const MaxBundle = 4

// PublishCABundle adds caPEM to the caBundle of every webhook of the
// MutatingWebhookConfiguration name, keeping the other replicas' CAs (see
// MaxBundle). It needs get and patch on that one object, as
// deploy/base/rbac.yaml grants. Concurrent replicas are serialised by the
// object's resourceVersion: a patch that lost the race is retried on the
// fresh object.
func PublishCABundle(ctx context.Context, client kubernetes.Interface, name string, caPEM []byte, now time.Time) error {
	mwcs := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mwc, err := mwcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("inject: MutatingWebhookConfiguration %s: %w", name, err)
		}
		ops := []PatchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: mwc.ResourceVersion}}
		for i, wh := range mwc.Webhooks {
			merged, err := MergeBundle(wh.ClientConfig.CABundle, caPEM, now)
			if err != nil {
				return fmt.Errorf("inject: MutatingWebhookConfiguration %s: webhooks[%d] (%s): %w", name, i, wh.Name, err)
			}
			if !bytes.Equal(merged, wh.ClientConfig.CABundle) {
				ops = append(ops, PatchOp{Op: "add", Path: fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), Value: merged})
			}
		}
		if len(ops) == 1 {
			return nil // already there
		}
		patch, err := json.Marshal(ops)
		if err != nil {
			return err
		}
		// Replacing resourceVersion makes the apiserver refuse the patch
		// with 409 Conflict if the object changed since the Get.
		_, err = mwcs.Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: "causeway-control-plane"})
		return err
	})
}

// MergeBundle returns bundle with ca added: unparseable and expired
// certificates dropped, duplicates removed, the newest MaxBundle kept,
// newest first. ca must be one PEM certificate.
func MergeBundle(bundle, ca []byte, now time.Time) ([]byte, error) {
	ours, err := parsePEMCerts(ca)
	if err != nil || len(ours) != 1 {
		return nil, fmt.Errorf("caBundle: want one PEM CA certificate to add (got %d, %v)", len(ours), err)
	}
	have, _ := parsePEMCerts(bundle) // what the apiserver cannot use is dropped
	certs := append(ours, have...)
	certs = slices.DeleteFunc(certs, func(c *x509.Certificate) bool { return now.After(c.NotAfter) })
	// Newest first; equal start times are ordered by their bytes, so
	// replicas that merge the same set in any order write the same bundle.
	slices.SortStableFunc(certs, func(a, b *x509.Certificate) int {
		if c := b.NotBefore.Compare(a.NotBefore); c != 0 {
			return c
		}
		return bytes.Compare(a.Raw, b.Raw)
	})
	var out []*x509.Certificate
	for _, c := range certs {
		if !slices.ContainsFunc(out, c.Equal) {
			out = append(out, c)
		}
	}
	if len(out) > MaxBundle {
		out = out[:MaxBundle]
	}
	// Ours must survive even if the bundle holds newer ones (clock skew).
	switch {
	case len(out) == 0:
		out = ours // ours has expired too; still better than an empty bundle
	case !slices.ContainsFunc(out, ours[0].Equal):
		out[len(out)-1] = ours[0]
	}
	var b bytes.Buffer
	for _, c := range out {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes(), nil
}

// parsePEMCerts reads every CERTIFICATE block; it stops at the first block
// that does not parse and returns what came before with the error.
func parsePEMCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
}
