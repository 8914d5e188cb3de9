package kube

import (
	"encoding/json"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The SMI CRDs in deploy/crds serve every version with conversion None: the
// apiserver answers a read in any served version by rewriting apiVersion and
// nothing else. An object written as v1alpha1 therefore comes back from a
// v1alpha4 informer labelled v1alpha4 but still shaped like v1alpha1 (a
// Quantity weight, top-level destination/specs), and translating it by its
// label would misread it.
//
// The version a client wrote is not lost, though: the apiserver records it in
// metadata.managedFields, per field manager, with the fields that manager set.
// writtenVersion picks the version of the most recent write that set content
// (anything beyond metadata and status). Known limits: managedFields times
// have one-second resolution, so of two writes in the same second by
// different managers the later entry in the list wins; and a patch in another
// version that touches one field of an older-shaped object relabels the whole
// object. Neither arises with one tool applying whole manifests.

// writtenVersion returns the apiVersion ("group/version") that u's content
// was last written in, or u's own apiVersion when managedFields do not say.
func writtenVersion(u *unstructured.Unstructured) string {
	best := ""
	var bestTime metav1.Time
	for _, mf := range u.GetManagedFields() {
		if mf.Subresource != "" || mf.APIVersion == "" || !setsContent(mf.FieldsV1) {
			continue
		}
		var t metav1.Time
		if mf.Time != nil {
			t = *mf.Time
		}
		if best == "" || !t.Before(&bestTime) {
			best, bestTime = mf.APIVersion, t
		}
	}
	if best == "" {
		return u.GetAPIVersion()
	}
	return best
}

// setsContent reports whether a managedFields entry owns a top-level field
// other than the object's identity, metadata and status.
func setsContent(f *metav1.FieldsV1) bool {
	if f == nil {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(f.Raw, &top) != nil {
		return false
	}
	for k := range top {
		switch k {
		case "f:metadata", "f:status", "f:apiVersion", "f:kind", ".":
		default:
			return true
		}
	}
	return false
}
