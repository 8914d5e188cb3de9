package kube

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExportKey is the label or annotation that exports a Service to linked
// clusters (multi-cluster contract): `causeway.dev/export: "true"`.
const ExportKey = "causeway.dev/export"

// GroupMCS is the Kubernetes Multi-Cluster Services API group (KEP-1645),
// whose ServiceExport of the same namespace and name exports a Service too.
const GroupMCS = "multicluster.x-k8s.io"

// serviceExport is MCS's ServiceExport as far as Causeway reads it: its
// name is the Service it exports. v1alpha1 has no spec; status is written by
// controllers. The type is declared here rather than imported from
// sigs.k8s.io/mcs-api, whose module would bring a controller framework in
// for two metadata fields.
type serviceExport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Status            struct {
		Conditions []metav1.Condition `json:"conditions,omitempty"`
	} `json:"status,omitzero"`
}

// exportField is how diagnostics spell the label or annotation field.
func exportField(where string) string {
	return fmt.Sprintf("metadata.%s[%q]", where, ExportKey)
}

// exportFlag reads the export label or annotation of a Service: "true" or
// "false" (any case, as YAML users write booleans), anything else an error
// naming the field. Both set and disagreeing is an error too: which one was
// meant cannot be known, and exporting by mistake crosses a trust boundary.
// set says whether either was given with a valid value.
func (t *translator) exportFlag(s *service) (export, set bool) {
	read := func(where string, m map[string]string) (val, set bool) {
		v, ok := m[ExportKey]
		if !ok {
			return false, false
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
		t.errorf(s.objMeta, exportField(where), "%q: want \"true\" or \"false\"", v)
		return false, false
	}
	lv, lset := read("labels", s.v.Labels)
	av, aset := read("annotations", s.v.Annotations)
	if lset && aset && lv != av {
		t.errorf(s.objMeta, exportField("annotations"), "says %t but the label of the same name says %t", av, lv)
		return false, false
	}
	return lv || av, lset || aset
}

// addServiceExport files a ServiceExport by the Service it exports.
func (t *translator) addServiceExport(m objMeta) {
	t.exports[nsName{m.obj.Namespace, m.obj.Name}] = m
}

// orphanExports warns about ServiceExports whose Service is not among the
// inputs: it may live in the cluster rather than in the files given.
func (t *translator) orphanExports(have map[nsName]bool) {
	for k, m := range t.exports {
		if !have[k] {
			t.warnf(m, "metadata.name", "Service %s/%s is not among the inputs; nothing exported", k.ns, k.name)
		}
	}
}

// exported reports whether the Service is exported (spec.Service.Export)
// by its label or annotation or by a ServiceExport of the same name. A
// ServiceExport is an object of its own that someone applied on purpose, so
// it wins over a "false" on the Service, with a warning.
func (t *translator) exported(s *service) bool {
	flag, set := t.exportFlag(s)
	se, byMCS := t.exports[nsName{s.obj.Namespace, s.obj.Name}]
	if byMCS && set && !flag {
		t.warnf(se, "metadata.name", "exports Service %s/%s although the Service says %s: \"false\"", s.obj.Namespace, s.obj.Name, ExportKey)
	}
	return flag || byMCS
}
