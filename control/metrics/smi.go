package metrics

import (
	"cmp"
	"path"
	"slices"
	"strings"
	"time"

	smimetrics "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/metrics/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/causeway-mesh/causeway/spec"
)

// BasePath is where the SMI metrics API is served (traffic-metrics.md).
const BasePath = "/apis/metrics.smi-spec.io/v1alpha1"

// Kind is a resource type the API serves metrics for. Causeway's model
// knows services, their namespaces and TrafficSplits; pods and deployments
// are not in it, so they are not offered.
type Kind struct {
	Resource   string // URL segment: "services"
	Kind       string // object kind: "Service"
	Namespaced bool
}

// Kinds lists the resource types served, in APIResourceList order.
var Kinds = []Kind{
	{Resource: "namespaces", Kind: "Namespace"},
	{Resource: "services", Kind: "Service", Namespaced: true},
	{Resource: "trafficsplits", Kind: "TrafficSplit", Namespaced: true},
}

// LookupKind finds a served kind by its URL segment.
func LookupKind(resource string) (Kind, bool) {
	i := slices.IndexFunc(Kinds, func(k Kind) bool { return k.Resource == resource })
	if i < 0 {
		return Kind{}, false
	}
	return Kinds[i], true
}

// APIResources is the body of GET BasePath.
func APIResources() *metav1.APIResourceList {
	l := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: smimetrics.APIVersion}
	for _, k := range Kinds {
		l.APIResources = append(l.APIResources, metav1.APIResource{Name: k.Resource, Namespaced: k.Namespaced,
			Kind: "TrafficMetrics", Verbs: metav1.Verbs{"get", "list"}})
	}
	return l
}

// TrafficMetrics is smi-sdk-go's TrafficMetrics plus the field the SMI text
// has and the SDK type lacks: for a TrafficSplit, the backend the item is
// about.
type TrafficMetrics struct {
	*smimetrics.TrafficMetrics `json:",inline"`
	Backend                    *Backend `json:"backend,omitempty"`
}

// Backend is the TrafficSplit backend an item measures.
type Backend struct {
	Apex   string `json:"apex"`
	Name   string `json:"name"`
	Weight string `json:"weight"` // relative, as in the TrafficSplit ("90", "500m")
}

// TrafficMetricsList is the list shape of the API.
type TrafficMetricsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Resource        *corev1.ObjectReference `json:"resource"`
	Items           []*TrafficMetrics       `json:"items"`
}

// Extra metric names, after SMI's five: Causeway computes rates so `causeway
// stat` and canary controllers need not. The SMI spec leaves rates to the
// client; these two only add entries to the same list.
const (
	MetricSuccessRate = "success_rate"        // successes / all, 0-1; absent without requests
	MetricRPS         = "requests_per_second" // all / window; absent without a window
)

// Query answers SMI metric requests from one View and the served snapshot.
type Query struct {
	View     View
	Snapshot *spec.Snapshot
}

// ErrNotFound is returned for a resource the snapshot does not hold, or a
// path this API does not serve.
type ErrNotFound struct{ Msg string }

func (e ErrNotFound) Error() string { return e.Msg }

func notFound(what string) ErrNotFound { return ErrNotFound{what + " not found"} }

// Get is GET .../namespaces/{ns}/{resource}/{name} (ns is "" and name the
// namespace for namespaces). A TrafficSplit answers with a list, one item
// per backend (SMI: "Each TrafficMetrics object is scoped to an individual
// backend"); the others with one TrafficMetrics.
func (q Query) Get(kind Kind, ns, name string) (any, error) {
	switch kind.Resource {
	case "namespaces":
		if !slices.Contains(q.namespaces(), name) {
			return nil, notFound("namespace " + name)
		}
		f := q.sum(func(_ Scrape, k FlowKey) bool { return keyNS(k.Backend) == name }).Add(
			q.peers(func(k FlowKey) bool { return keyNS(k.Service) == name }))
		return q.item(ref(kind, "", name), f, nil, nil), nil
	case "services":
		key := spec.Key{Namespace: ns, Name: name}
		if q.Snapshot.Service(key) == nil {
			return nil, notFound("service " + key.String())
		}
		f := q.sum(func(_ Scrape, k FlowKey) bool { return k.Backend == key.String() }).Add(
			q.peers(func(k FlowKey) bool { return k.Service == key.String() }))
		return q.item(ref(kind, ns, name), f, nil, nil), nil
	case "trafficsplits":
		i := slices.IndexFunc(q.Snapshot.Splits, func(s spec.Split) bool { return s.Key == spec.Key{Namespace: ns, Name: name} })
		if i < 0 {
			return nil, notFound("trafficsplit " + ns + "/" + name)
		}
		l := q.list(ref(kind, ns, name), selfLink(ref(kind, ns, name)))
		l.Items = q.splitItems(kind, q.Snapshot.Splits[i])
		return l, nil
	}
	return nil, notFound("resource type " + kind.Resource)
}

// List is GET .../namespaces/{ns}/{resource} (or .../namespaces).
func (q Query) List(kind Kind, ns string) *TrafficMetricsList {
	l := q.list(&corev1.ObjectReference{Kind: kind.Kind, Namespace: ns}, path.Join(BasePath, nsPath(kind, ns), kind.Resource))
	switch kind.Resource {
	case "namespaces":
		for _, n := range q.namespaces() {
			it, _ := q.Get(kind, "", n)
			l.Items = append(l.Items, it.(*TrafficMetrics))
		}
	case "services":
		for _, s := range q.Snapshot.Services {
			if s.Key.Cluster == "" && s.Key.Namespace == ns {
				it, _ := q.Get(kind, ns, s.Key.Name)
				l.Items = append(l.Items, it.(*TrafficMetrics))
			}
		}
	case "trafficsplits":
		for _, sp := range q.Snapshot.Splits {
			if sp.Key.Cluster == "" && sp.Key.Namespace == ns {
				l.Items = append(l.Items, q.splitItems(kind, sp)...)
			}
		}
	}
	return l
}

// Edges is GET .../namespaces/{ns}/services/{name}/edges: one item per
// workload that called the service (direction from, observed at the
// caller's proxy), one per linked cluster whose callers called it (direction
// from, a Cluster resource, observed at the service's proxies), and one per
// service it called (direction to).
func (q Query) Edges(kind Kind, ns, name string) (*TrafficMetricsList, error) {
	if kind.Resource != "services" {
		return nil, ErrNotFound{"edges are served for services, not " + kind.Resource}
	}
	key := spec.Key{Namespace: ns, Name: name}
	if q.Snapshot.Service(key) == nil {
		return nil, notFound("service " + key.String())
	}
	res := ref(kind, ns, name)
	l := q.list(res, path.Join(selfLink(res), "edges"))
	type edge struct {
		dir smimetrics.Direction
		ref corev1.ObjectReference
	}
	flows := map[edge]Flow{}
	for _, n := range q.View.Nodes {
		serves := slices.Contains(n.Node.Services, key)
		for k, f := range n.Flows {
			if k.Direction == Peer && k.Service == key.String() {
				e := edge{smimetrics.From, corev1.ObjectReference{Kind: "Cluster", Name: q.clusterOf(k.Backend)}}
				flows[e] = flows[e].Add(f)
				continue
			}
			if k.Direction != Outbound {
				continue
			}
			if k.Backend == key.String() {
				e := edge{smimetrics.From, callerRef(n.Node)}
				flows[e] = flows[e].Add(f)
			}
			if serves {
				b := parseKey(k.Backend)
				e := edge{smimetrics.To, corev1.ObjectReference{Kind: "Service", Namespace: b.Namespace, Name: b.Name}}
				flows[e] = flows[e].Add(f)
			}
		}
	}
	edges := make([]edge, 0, len(flows))
	for e := range flows {
		edges = append(edges, e)
	}
	slices.SortFunc(edges, func(a, b edge) int {
		return cmp.Or(strings.Compare(string(a.dir), string(b.dir)), strings.Compare(a.ref.Kind, b.ref.Kind),
			strings.Compare(a.ref.Namespace, b.ref.Namespace), strings.Compare(a.ref.Name, b.ref.Name))
	})
	for _, e := range edges {
		r := e.ref
		it := q.item(res, flows[e], &smimetrics.Edge{Direction: e.dir, Resource: &r}, nil)
		it.SelfLink = path.Join(selfLink(res), "edges")
		l.Items = append(l.Items, it)
	}
	return l, nil
}

func (q Query) splitItems(kind Kind, sp spec.Split) []*TrafficMetrics {
	res := ref(kind, sp.Key.Namespace, sp.Key.Name)
	var out []*TrafficMetrics
	for _, b := range sp.Backends {
		f := q.sum(func(_ Scrape, k FlowKey) bool {
			return k.Service == sp.Root.String() && k.Backend == b.Service.String()
		})
		out = append(out, q.item(res, f, &smimetrics.Edge{Direction: smimetrics.From},
			&Backend{Apex: sp.Root.Name, Name: b.Service.Name, Weight: spec.FormatWeight(b.Weight)}))
	}
	return out
}

// Outbound is the direction every answer is computed from: traffic as the
// calling proxy saw it, which covers callers of unmeshed services too. The
// callee's inbound series count the same requests again, so they are left
// out rather than added.
const Outbound = "outbound"

// Peer is the direction of requests from linked clusters' callers, counted
// at the callee's proxy: no proxy of this cluster saw them go out, so they
// are added to the outbound counts, never counted twice.
const Peer = "peer"

// peers sums the Peer flows keep selects.
func (q Query) peers(keep func(FlowKey) bool) Flow {
	return q.sumOf(Peer, func(_ Scrape, k FlowKey) bool { return keep(k) })
}

// clusterOf names the linked cluster of a trust domain, or the trust
// domain itself when no link has it.
func (q Query) clusterOf(td string) string {
	for _, l := range q.Snapshot.Links {
		if l.TrustDomain == td {
			return l.Cluster
		}
	}
	return td
}

func (q Query) sum(keep func(Scrape, FlowKey) bool) Flow { return q.sumOf(Outbound, keep) }

// sumOf sums the flows of one direction that keep selects.
func (q Query) sumOf(dir string, keep func(Scrape, FlowKey) bool) Flow {
	var total Flow
	for _, n := range q.View.Nodes {
		for k, f := range n.Flows {
			if k.Direction == dir && keep(n, k) {
				total = total.Add(f)
			}
		}
	}
	return total
}

func (q Query) namespaces() []string {
	var out []string
	for _, s := range q.Snapshot.Services {
		if s.Key.Cluster == "" {
			out = append(out, s.Key.Namespace)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (q Query) list(res *corev1.ObjectReference, self string) *TrafficMetricsList {
	return &TrafficMetricsList{
		TypeMeta: metav1.TypeMeta{Kind: "TrafficMetricsList", APIVersion: smimetrics.APIVersion},
		ListMeta: metav1.ListMeta{SelfLink: self},
		Resource: res,
		Items:    []*TrafficMetrics{},
	}
}

func (q Query) item(res *corev1.ObjectReference, f Flow, edge *smimetrics.Edge, backend *Backend) *TrafficMetrics {
	if edge == nil {
		edge = &smimetrics.Edge{Direction: smimetrics.From}
	}
	ts := metav1.NewTime(q.View.At.UTC().Truncate(time.Second))
	tm := &smimetrics.TrafficMetrics{
		TypeMeta: metav1.TypeMeta{Kind: "TrafficMetrics", APIVersion: smimetrics.APIVersion},
		ObjectMeta: metav1.ObjectMeta{Name: res.Name, Namespace: res.Namespace, SelfLink: selfLink(res),
			CreationTimestamp: ts},
		Interval: &smimetrics.Interval{Timestamp: ts, Window: metav1.Duration{Duration: q.View.Window.Round(time.Millisecond)}},
		Resource: res,
		Edge:     edge,
		Metrics:  q.metrics(f),
	}
	return &TrafficMetrics{TrafficMetrics: tm, Backend: backend}
}

// metrics renders SMI's five metrics (latencies in ms, as smi-sdk-go and
// smi-metrics report them) and Causeway's two rates.
func (q Query) metrics(f Flow) []*smimetrics.Metric {
	var out []*smimetrics.Metric
	for _, p := range []struct {
		name string
		q    float64
	}{{"p99_response_latency", .99}, {"p90_response_latency", .90}, {"p50_response_latency", .50}} {
		v, _ := Quantile(p.q, f.Latency)
		out = append(out, metric(p.name, smimetrics.MilliSeconds, v*1000))
	}
	out = append(out, metric("success_count", "", f.Success), metric("failure_count", "", f.Failure))
	// No requests has no success rate; 0 would read as "all failed".
	if all := f.Success + f.Failure; all > 0 {
		out = append(out, metric(MetricSuccessRate, "", f.Success/all))
	}
	if q.View.Window > 0 {
		out = append(out, metric(MetricRPS, "", (f.Success+f.Failure)/q.View.Window.Seconds()))
	}
	return out
}

func metric(name string, unit smimetrics.Unit, v float64) *smimetrics.Metric {
	return &smimetrics.Metric{Name: name, Unit: unit, Value: resource.NewMilliQuantity(int64(v*1000+0.5), resource.DecimalSI)}
}

func ref(k Kind, ns, name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: k.Kind, Namespace: ns, Name: name}
}

func selfLink(r *corev1.ObjectReference) string {
	k := slices.IndexFunc(Kinds, func(k Kind) bool { return k.Kind == r.Kind })
	if k < 0 {
		return ""
	}
	return path.Join(BasePath, nsPath(Kinds[k], r.Namespace), Kinds[k].Resource, r.Name)
}

func nsPath(k Kind, ns string) string {
	if !k.Namespaced || ns == "" {
		return ""
	}
	return path.Join("namespaces", ns)
}

// callerRef names the workload behind a proxy for an edge: its first
// service, else its service account (from the SPIFFE ID), else the node.
func callerRef(n spec.Node) corev1.ObjectReference {
	if len(n.Services) > 0 {
		return corev1.ObjectReference{Kind: "Service", Namespace: n.Services[0].Namespace, Name: n.Services[0].Name}
	}
	if segs := strings.Split(strings.TrimPrefix(n.Identity.Path(), "/"), "/"); len(segs) == 4 && segs[0] == "ns" && segs[2] == "sa" {
		return corev1.ObjectReference{Kind: "ServiceAccount", Namespace: segs[1], Name: segs[3]}
	}
	return corev1.ObjectReference{Kind: "Pod", Name: n.ID}
}

// parseKey reads the proxy's "ns/name" or "cluster/ns/name" label.
func parseKey(s string) spec.Key {
	parts := strings.Split(s, "/")
	switch len(parts) {
	case 2:
		return spec.Key{Namespace: parts[0], Name: parts[1]}
	case 3:
		return spec.Key{Cluster: parts[0], Namespace: parts[1], Name: parts[2]}
	}
	return spec.Key{Name: s}
}

func keyNS(s string) string {
	k := parseKey(s)
	if k.Cluster != "" {
		return "" // a remote cluster's namespace is not this one
	}
	return k.Namespace
}
