package gatewayapi

import (
	"cmp"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/causeway-mesh/causeway/spec"
)

// ManagedBy is the label every rendered object carries, so a platform team
// can list (and prune) what came from Causeway.
const ManagedBy = "app.kubernetes.io/managed-by"

// NewObject builds one rendered object. spec may be nil (no spec field).
// Values inside must be JSON-shaped (map[string]any, []any, string, int64,
// bool) so the object deep-copies like any decoded one.
func NewObject(apiVersion, kind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	meta := map[string]any{"name": name, "labels": map[string]any{ManagedBy: "causeway"}}
	if namespace != "" {
		meta["namespace"] = namespace
	}
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": meta}
	if spec != nil {
		obj["spec"] = spec
	}
	return &unstructured.Unstructured{Object: obj}
}

// SortObjects orders objects by namespace, kind, then name, so output does
// not depend on the order they were built in.
func SortObjects(objs []*unstructured.Unstructured) {
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(strings.Compare(a.GetNamespace(), b.GetNamespace()),
			strings.Compare(a.GetKind(), b.GetKind()),
			strings.Compare(a.GetName(), b.GetName()))
	})
}

// Warnf records a warning about the input object o came from, naming the
// field as the input spells it.
func Warnf(ds *spec.Diagnostics, o spec.Origin, field, format string, args ...any) {
	ds.Warnf(o.Source, o.Object, o.Field(field), format, args...)
}

// Errorf records an error about the input object o came from.
func Errorf(ds *spec.Diagnostics, o spec.Origin, field, format string, args ...any) {
	ds.Errorf(o.Source, o.Object, o.Field(field), format, args...)
}

// FQDN is a local service's cluster DNS name.
func FQDN(k spec.Key, clusterDomain string) string {
	return k.Name + "." + k.Namespace + ".svc." + cmp.Or(clusterDomain, "cluster.local")
}

// Lookup finds a route of the snapshot by kind and key.
func Lookup(s *spec.Snapshot, kind spec.RouteKind, k spec.Key) *spec.Route {
	for i := range s.Routes {
		if s.Routes[i].Kind == kind && s.Routes[i].Key == k {
			return &s.Routes[i]
		}
	}
	return nil
}

// SelectMatches returns the matches of r a reference names (all of them
// when it names none), in the route's order.
func SelectMatches(r *spec.Route, names []string) []spec.Match {
	if len(names) == 0 {
		return slices.Clone(r.Matches)
	}
	var out []spec.Match
	for _, m := range r.Matches {
		if slices.Contains(names, m.Name) {
			out = append(out, m)
		}
	}
	return out
}

// Methods returns a match's methods, nil meaning every method.
func Methods(m spec.Match) []string {
	if len(m.Methods) == 0 || slices.Contains(m.Methods, "*") {
		return nil
	}
	out := slices.Clone(m.Methods)
	slices.Sort(out)
	return slices.Compact(out)
}

// SortedHeaders returns a match's header names in order.
func SortedHeaders(m spec.Match) []string {
	out := make([]string, 0, len(m.Headers))
	for h := range m.Headers {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// PortsOf returns the service's ports that speak one of the protocols.
func PortsOf(svc *spec.Service, want func(spec.Protocol) bool) []spec.Port {
	var out []spec.Port
	for _, p := range svc.Ports {
		if want(p.Protocol) {
			out = append(out, p)
		}
	}
	return out
}

// TargetPort is the port the workload listens on for a service port.
func TargetPort(p spec.Port) int32 {
	return cmp.Or(p.TargetPort, p.Port)
}

// ServiceAccountOf reads the namespace and service account of a SPIFFE ID
// of the form spiffe://<td>/ns/<ns>/sa/<sa> (DESIGN §4).
func ServiceAccountOf(id spiffeid.ID) (namespace, serviceAccount string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "ns" || parts[2] != "sa" || parts[1] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// ServicesOf returns the local services some of whose workloads prove id.
// When none is known to (the inputs held no workloads, only Services), it
// falls back to the services of id's namespace whose identities are
// unknown, and says so with assumed=true.
func ServicesOf(s *spec.Snapshot, id spiffeid.ID) (out []*spec.Service, assumed bool) {
	for i := range s.Services {
		if svc := &s.Services[i]; svc.Key.Cluster == "" && slices.Contains(svc.Identities, id) {
			out = append(out, svc)
		}
	}
	ns, _, ok := ServiceAccountOf(id)
	if len(out) > 0 || !ok {
		return out, false
	}
	for i := range s.Services {
		if svc := &s.Services[i]; svc.Key.Cluster == "" && svc.Key.Namespace == ns && len(svc.Identities) == 0 {
			out = append(out, svc)
		}
	}
	return out, len(out) > 0
}

// ServiceNames lists services as "ns/name, ...".
func ServiceNames(svcs []*spec.Service) string {
	names := make([]string, len(svcs))
	for i, s := range svcs {
		names[i] = s.Key.String()
	}
	return strings.Join(names, ", ")
}

// Neighbours lists the other service accounts of id's namespace that the
// snapshot knows (identities of local services there, destinations of
// policies), sorted. Istio and Linkerd select workloads by pod labels,
// which the model lacks, so a policy for id reaches these too.
func Neighbours(s *spec.Snapshot, id spiffeid.ID) []string {
	ns, _, ok := ServiceAccountOf(id)
	if !ok {
		return nil
	}
	seen := map[spiffeid.ID]bool{id: true}
	var out []string
	note := func(other spiffeid.ID) {
		if n, sa, ok := ServiceAccountOf(other); ok && n == ns && !seen[other] {
			seen[other] = true
			out = append(out, sa)
		}
	}
	for _, svc := range s.Services {
		if svc.Key.Cluster == "" && svc.Key.Namespace == ns {
			for _, o := range svc.Identities {
				note(o)
			}
		}
	}
	for _, p := range s.Policies {
		note(p.Destination)
	}
	slices.Sort(out)
	return out
}

// LocalNamespaces is the set of namespaces the snapshot's local Services
// live in: where a strict mesh's deny-by-default must be rendered.
func LocalNamespaces(s *spec.Snapshot) map[string]bool {
	out := map[string]bool{}
	for _, svc := range s.Services {
		if svc.Key.Cluster == "" {
			out[svc.Key.Namespace] = true
		}
	}
	return out
}
