package inject

import (
	"encoding/json"
	"reflect"

	corev1 "k8s.io/api/core/v1"
)

// PatchOp is one RFC 6902 JSON Patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// Patch is the JSON Patch that turns orig into injected. It replaces whole
// fields (annotations, init containers, containers, volumes) rather than
// diffing inside them: "add" on an existing member replaces it (RFC 6902
// §4.1), so the same op works whether or not orig had the field, and the
// patch cannot be misapplied to a pod that another webhook reordered.
func Patch(orig, injected *corev1.Pod) ([]PatchOp, error) {
	var ops []PatchOp
	field := func(path string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			ops = append(ops, PatchOp{Op: "add", Path: path, Value: b})
		}
	}
	field("/metadata/annotations", orig.Annotations, injected.Annotations)
	field("/spec/initContainers", orig.Spec.InitContainers, injected.Spec.InitContainers)
	field("/spec/containers", orig.Spec.Containers, injected.Spec.Containers)
	field("/spec/volumes", orig.Spec.Volumes, injected.Spec.Volumes)
	// Round-trip through JSON once so a value that cannot be encoded fails
	// here, with a Go error, instead of at the apiserver.
	if _, err := json.Marshal(ops); err != nil {
		return nil, err
	}
	return ops, nil
}
