package kube

import (
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/causeway-mesh/causeway/spec"
)

type slice struct {
	objMeta
	v *discoveryv1.EndpointSlice
}

type endpoints struct {
	objMeta
	v *corev1.Endpoints //nolint:staticcheck // see decodeKind
}

func (t *translator) addSlice(m objMeta, v *discoveryv1.EndpointSlice) {
	name := v.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		t.warnf(m, "metadata.labels", "no %s label: the EndpointSlice belongs to no Service and is not used", discoveryv1.LabelServiceName)
		return
	}
	k := nsName{m.obj.Namespace, name}
	t.slices[k] = append(t.slices[k], slice{objMeta: m, v: v})
}

// serviceEndpoints gathers the endpoints of a Service. EndpointSlices win
// over Endpoints when both are given, as they do for kube-proxy; a port of
// a slice serves the Service port of the same name ("" for an unnamed one).
func (t *translator) serviceEndpoints(s *service, ports []spec.Port) []spec.Endpoint {
	k := nsName{s.obj.Namespace, s.obj.Name}
	byName := map[string]int32{}
	for _, p := range ports {
		byName[p.Name] = p.Port
	}
	var out []spec.Endpoint
	if sl, ok := t.slices[k]; ok {
		for _, es := range sl {
			out = append(out, t.sliceEndpoints(es, byName)...)
		}
		return out
	}
	if ep, ok := t.endpoints[k]; ok {
		out = t.legacyEndpoints(ep, byName)
	}
	return out
}

func (t *translator) sliceEndpoints(es slice, byName map[string]int32) []spec.Endpoint {
	var out []spec.Endpoint
	for i, p := range es.v.Ports {
		field := fmt.Sprintf("ports[%d]", i)
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if p.Port == nil {
			t.warnf(es.objMeta, field+".port", "no port number; port left out")
			continue
		}
		svcPort, ok := byName[name]
		if !ok {
			t.warnf(es.objMeta, field+".name", "no port named %q in Service %s/%s; port left out", name, es.obj.Namespace, es.v.Labels[discoveryv1.LabelServiceName])
			continue
		}
		for _, e := range es.v.Endpoints {
			// A nil ready condition means "unknown", which consumers
			// must read as ready (discovery/v1 API documentation).
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			zone := ""
			if e.Zone != nil {
				zone = *e.Zone
			}
			id := t.podIdentity(es.obj.Namespace, e.TargetRef)
			for _, addr := range e.Addresses {
				out = append(out, spec.Endpoint{Addr: addr, Port: *p.Port, ServicePort: svcPort, Ready: ready, Zone: zone, Identity: id})
			}
		}
	}
	return out
}

func (t *translator) legacyEndpoints(ep endpoints, byName map[string]int32) []spec.Endpoint {
	var out []spec.Endpoint
	for i, ss := range ep.v.Subsets {
		for j, p := range ss.Ports {
			svcPort, ok := byName[p.Name]
			if !ok {
				t.warnf(ep.objMeta, fmt.Sprintf("subsets[%d].ports[%d].name", i, j), "no port named %q in Service %s/%s; port left out", p.Name, ep.obj.Namespace, ep.obj.Name)
				continue
			}
			add := func(addrs []corev1.EndpointAddress, ready bool) {
				for _, a := range addrs {
					out = append(out, spec.Endpoint{Addr: a.IP, Port: p.Port, ServicePort: svcPort, Ready: ready, Identity: t.podIdentity(ep.obj.Namespace, a.TargetRef)})
				}
			}
			add(ss.Addresses, true)
			add(ss.NotReadyAddresses, false)
		}
	}
	return out
}

// podIdentity is the identity of the pod an endpoint points at, when that
// pod is among the inputs; zero otherwise (the endpoint's identity is then
// unknown, not wrong).
func (t *translator) podIdentity(ns string, ref *corev1.ObjectReference) spiffeid.ID {
	if ref == nil || ref.Kind != "Pod" {
		return spiffeid.ID{}
	}
	if ref.Namespace != "" {
		ns = ref.Namespace
	}
	w, ok := t.pods[nsName{ns, ref.Name}]
	if !ok || !w.meshed {
		return spiffeid.ID{}
	}
	sa, _ := w.serviceAccount()
	id, err := spec.Identity(t.opts.TrustDomain, ns, sa)
	if err != nil {
		return spiffeid.ID{} // reported once, on the Pod itself
	}
	return id
}

// orphanEndpoints warns about endpoints whose Service is not among the
// inputs: they are not used, though the Service may exist in the cluster.
func (t *translator) orphanEndpoints() {
	have := map[nsName]bool{}
	for _, s := range t.services {
		have[nsName{s.obj.Namespace, s.obj.Name}] = true
	}
	for k, sl := range t.slices {
		if !have[k] {
			for _, es := range sl {
				t.warnf(es.objMeta, "metadata.labels", "Service %s/%s is not among the inputs; endpoints not used", k.ns, k.name)
			}
		}
	}
	for k, ep := range t.endpoints {
		if !have[k] {
			t.warnf(ep.objMeta, "metadata.name", "Service %s/%s is not among the inputs; endpoints not used", k.ns, k.name)
		}
	}
}
