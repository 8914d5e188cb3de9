package gatewayapitest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/spec"
)

// Field returns a nested field of the named object as JSON, for comparing
// by meaning with an expected JSON text.
func Field(t *testing.T, objs []*unstructured.Unstructured, kind, ns, name string, path ...string) any {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			v, ok, err := unstructured.NestedFieldNoCopy(o.Object, path...)
			if err != nil || !ok {
				t.Fatalf("%s %s/%s has no %v", kind, ns, name, path)
			}
			// Round-trip through JSON so int64 and float64 compare equal.
			data, _ := json.Marshal(v)
			var out any
			_ = json.Unmarshal(data, &out)
			return out
		}
	}
	t.Fatalf("no %s %s/%s among %d objects", kind, ns, name, len(objs))
	return nil
}

// Want compares a value with an expected JSON text by meaning.
func Want(t *testing.T, got any, wantJSON string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(wantJSON), &w); err != nil {
		t.Fatalf("bad expectation: %v", err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Errorf("got  %s\nwant %s", g, wantJSON)
	}
}

// HasDiag fails unless a diagnostic on field contains substr.
func HasDiag(t *testing.T, ds spec.Diagnostics, field, substr string) {
	t.Helper()
	for _, d := range ds {
		if d.Field == field && strings.Contains(d.Message, substr) {
			return
		}
	}
	t.Errorf("no diagnostic on %q containing %q in:\n%v", field, substr, ds)
}
