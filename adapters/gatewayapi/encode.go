package gatewayapi

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Encode prints objects as multi-document YAML ("yaml") or as one JSON
// List ("json", what kubectl prints for several objects). Keys come out
// sorted, so the bytes depend only on the objects and their order.
func Encode(objs []*unstructured.Unstructured, format string) ([]byte, error) {
	switch format {
	case "json":
		items := make([]any, len(objs))
		for i, o := range objs {
			items[i] = o.Object
		}
		out, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("render JSON: %w", err)
		}
		return append(out, '\n'), nil
	case "yaml":
		var b bytes.Buffer
		for i, o := range objs {
			if i > 0 {
				b.WriteString("---\n")
			}
			y, err := yaml.Marshal(o.Object)
			if err != nil {
				return nil, fmt.Errorf("render YAML: %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
			b.Write(y)
		}
		return b.Bytes(), nil
	}
	return nil, fmt.Errorf("output %q: want json or yaml", format)
}
