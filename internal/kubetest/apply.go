package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Doc is one object read from a manifest file, with where it came from.
type Doc struct {
	File  string
	Index int // 0-based index among the non-empty documents of File
	Obj   *unstructured.Unstructured
}

func (d Doc) String() string {
	return fmt.Sprintf("%s#%d %s %s", d.File, d.Index, d.Obj.GetKind(), nsName(d.Obj))
}

func nsName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}

// ReadFiles reads every object of multi-document YAML or JSON files (YAML
// anchors included), skipping empty documents.
func ReadFiles(paths ...string) ([]Doc, error) {
	var out []Doc
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		docs, err := Parse(p, data)
		if err != nil {
			return nil, err
		}
		out = append(out, docs...)
	}
	return out, nil
}

// Parse reads the objects of one multi-document YAML or JSON text; name is
// used in errors and in each Doc's File.
func Parse(name string, data []byte) ([]Doc, error) {
	var out []Doc
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for i := 0; ; i++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, Doc{File: name, Index: i, Obj: &unstructured.Unstructured{Object: m}})
	}
}

// ApplyYAML server-side-applies every object of a YAML text, in order.
func (a *Applier) ApplyYAML(ctx context.Context, yamlText string) error {
	docs, err := Parse("inline", []byte(yamlText))
	if err != nil {
		return err
	}
	for _, d := range docs {
		if _, err := a.Apply(ctx, d.Obj, false); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	return nil
}

// Applier applies objects with server-side apply, mapping kinds to
// resources through discovery.
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier builds an Applier for cfg.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Resource returns the client for obj's kind, reset-and-retrying discovery
// once so that kinds of just-installed CRDs resolve.
func (a *Applier) Resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, schema.GroupVersionResource, error) {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		a.mapper.Reset()
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, schema.GroupVersionResource{}, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		return a.dyn.Resource(m.Resource).Namespace(ns), m.Resource, nil
	}
	return a.dyn.Resource(m.Resource), m.Resource, nil
}

// Apply server-side-applies obj (field manager "kubetest", forcing
// conflicts, strict field validation). With dryRun the apiserver runs admission, validation and
// defaulting and stores nothing.
func (a *Applier) Apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) (*unstructured.Unstructured, error) {
	ri, _, err := a.Resource(obj)
	if err != nil {
		return nil, err
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// Strict: an unknown or duplicate field is an error, not a warning the
	// apiserver prunes away.
	opts := metav1.PatchOptions{FieldManager: "kubetest", Force: ptr(true), FieldValidation: metav1.FieldValidationStrict}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
}

func ptr[T any](v T) *T { return &v }

// InstallCRDs applies every CustomResourceDefinition in the files and waits
// until each is Established, so its kinds can be used at once.
func InstallCRDs(ctx context.Context, cfg *rest.Config, paths ...string) error {
	docs, err := ReadFiles(paths...)
	if err != nil {
		return err
	}
	a, err := NewApplier(cfg)
	if err != nil {
		return err
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	var names []string
	for _, d := range docs {
		if d.Obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		if _, err := a.Apply(ctx, d.Obj, false); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		names = append(names, d.Obj.GetName())
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			u, err := a.dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", name, err)
		}
	}
	a.mapper.Reset()
	return nil
}
