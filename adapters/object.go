package adapters

import "github.com/causeway-mesh/causeway/spec"

// Object is one input document (a Kubernetes-style object), not yet
// translated. Raw holds the document as JSON, exactly as written, so a
// translator can decode it strictly and report unknown fields with a path.
type Object struct {
	Source     spec.Source
	APIVersion string // e.g. "split.smi-spec.io/v1alpha2"
	Kind       string
	Namespace  string // "" when the document has none; translators default it
	Name       string
	Raw        []byte
}

// Group returns the API group of the object ("" for the core group).
func (o *Object) Group() string {
	for i := len(o.APIVersion) - 1; i >= 0; i-- {
		if o.APIVersion[i] == '/' {
			return o.APIVersion[:i]
		}
	}
	return ""
}

// Version returns the API version without the group ("v1alpha2").
func (o *Object) Version() string {
	for i := len(o.APIVersion) - 1; i >= 0; i-- {
		if o.APIVersion[i] == '/' {
			return o.APIVersion[i+1:]
		}
	}
	return o.APIVersion
}

// SpecObject names the object for diagnostics.
func (o *Object) SpecObject() spec.Object {
	return spec.Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name}
}

// Origin is the spec.Origin of the object itself.
func (o *Object) Origin() spec.Origin {
	return spec.Origin{Source: o.Source, Object: o.SpecObject()}
}
