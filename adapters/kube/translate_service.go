package kube

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/causeway-mesh/causeway/spec"
)

type service struct {
	objMeta
	v *corev1.Service
}

// workload is anything that runs pods: a Pod, or the pod template of a
// Deployment, StatefulSet, DaemonSet or ReplicaSet.
type workload struct {
	objMeta
	labels map[string]string
	pod    *corev1.PodSpec
	path   string // field path of the PodSpec in the object
	// meshed: a Pod that carries Causeway's sidecar (InjectedAnnotation).
	meshed bool
}

// InjectedAnnotation marks a Pod the injector gave a sidecar
// (control/inject.AnnotationInjected; a test there keeps the two equal).
// Only such a Pod's endpoints get an identity: a caller proxy speaks mTLS and
// the mesh preamble to them, which a pod without a sidecar would not answer.
const InjectedAnnotation = "causeway.dev/injected"

// serviceAccount is the account the workload's pods run as; Kubernetes
// fills in "default" when the spec names none (serviceAccount is the
// deprecated spelling, still honoured by the API server).
func (w workload) serviceAccount() (name, field string) {
	switch {
	case w.pod.ServiceAccountName != "":
		return w.pod.ServiceAccountName, w.path + ".serviceAccountName"
	case w.pod.DeprecatedServiceAccount != "":
		return w.pod.DeprecatedServiceAccount, w.path + ".serviceAccount"
	}
	return "default", w.path + ".serviceAccountName"
}

// identity is the SPIFFE ID of the workload's service account.
func (t *translator) identity(w workload) (spiffeid.ID, bool) {
	sa, field := w.serviceAccount()
	id, err := spec.Identity(t.opts.TrustDomain, w.obj.Namespace, sa)
	if err != nil {
		t.errorf(w.objMeta, field, "no SPIFFE identity for service account %q: %v", sa, err)
		return spiffeid.ID{}, false
	}
	return id, true
}

// selected returns the workloads in the Service's namespace whose pod labels
// its selector matches. A Service without a selector selects nothing: its
// endpoints are managed by hand (Kubernetes' own rule).
func (t *translator) selected(s *service) []workload {
	if len(s.v.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(s.v.Spec.Selector)
	var out []workload
	for _, w := range t.workloads {
		if w.obj.Namespace == s.obj.Namespace && sel.Matches(labels.Set(w.labels)) {
			out = append(out, w)
		}
	}
	return out
}

func (t *translator) service(s *service) (spec.Service, bool) {
	if s.v.Spec.Type == corev1.ServiceTypeExternalName {
		t.warnf(s.objMeta, "spec.type", "ExternalName Service (%s) has no workloads to mesh; left out", s.v.Spec.ExternalName)
		return spec.Service{}, false
	}
	out := spec.Service{
		Key:        spec.Key{Namespace: s.obj.Namespace, Name: s.obj.Name},
		ClusterIPs: clusterIPs(s.v.Spec),
		Export:     t.exported(s),
		Origin:     s.origin(""),
	}
	workloads := t.selected(s)
	for i, p := range s.v.Spec.Ports {
		field := fmt.Sprintf("spec.ports[%d]", i)
		proto, ok := t.protocol(s.objMeta, field, p)
		if !ok {
			continue
		}
		out.Ports = append(out.Ports, spec.Port{
			Name:       p.Name,
			Port:       p.Port,
			Protocol:   proto,
			TargetPort: targetPort(p, workloads),
		})
	}
	for _, w := range workloads {
		if id, ok := t.identity(w); ok {
			out.Identities = append(out.Identities, id)
		}
	}
	out.Endpoints = t.serviceEndpoints(s, out.Ports)
	return out, true
}

// protocol decides what a Service port speaks. The rule, first match wins:
//
//  1. protocol UDP -> udp (a datagram port carries nothing else), and SCTP is
//     not supported (the port is left out with a warning);
//  2. appProtocol, Kubernetes' own field: "http" and "kubernetes.io/ws" ->
//     http; "http2", "h2c" and "kubernetes.io/h2c" -> http2; "grpc" -> grpc;
//     "tcp" -> tcp; "https", "tls" and "kubernetes.io/wss" -> tcp (the app
//     encrypts, so the proxy sees opaque bytes); other values fall through;
//  3. the port name, Istio's convention: "<proto>" or "<proto>-suffix" with
//     proto http, http2, grpc or tcp; https/tls names are tcp, as in 2;
//  4. otherwise tcp, or "" with Options.LeaveUndecided.
//
// A "udp" name or appProtocol on a TCP port is a warning and stays tcp.
func (t *translator) protocol(m objMeta, field string, p corev1.ServicePort) (spec.Protocol, bool) {
	switch p.Protocol {
	case corev1.ProtocolUDP:
		return spec.ProtocolUDP, true
	case corev1.ProtocolSCTP:
		t.warnf(m, field+".protocol", "SCTP is not supported; port %d left out", p.Port)
		return "", false
	}
	if p.AppProtocol != nil {
		switch strings.ToLower(*p.AppProtocol) {
		case "http", "kubernetes.io/ws":
			return spec.ProtocolHTTP, true
		case "http2", "h2c", "kubernetes.io/h2c":
			return spec.ProtocolHTTP2, true
		case "grpc":
			return spec.ProtocolGRPC, true
		case "tcp", "https", "tls", "kubernetes.io/wss":
			return spec.ProtocolTCP, true
		case "udp":
			t.warnf(m, field+".appProtocol", "udp on a TCP port; treated as tcp")
			return spec.ProtocolTCP, true
		}
	}
	prefix, _, _ := strings.Cut(strings.ToLower(p.Name), "-")
	switch prefix {
	case "http":
		return spec.ProtocolHTTP, true
	case "http2":
		return spec.ProtocolHTTP2, true
	case "grpc":
		return spec.ProtocolGRPC, true
	case "tcp", "https", "tls":
		return spec.ProtocolTCP, true
	case "udp":
		t.warnf(m, field+".name", "port name %q says udp but the protocol is TCP; treated as tcp", p.Name)
		return spec.ProtocolTCP, true
	}
	if t.opts.LeaveUndecided {
		return "", true
	}
	return spec.ProtocolTCP, true
}

// targetPort is the port the workload listens on. A number is taken as is;
// a name is looked up among the container ports of the selected workloads,
// and kept only when they all agree (otherwise 0: each endpoint carries its
// own port anyway).
func targetPort(p corev1.ServicePort, workloads []workload) int32 {
	switch {
	case p.TargetPort.Type == intstr.Int:
		return p.TargetPort.IntVal
	case p.TargetPort.StrVal == "":
		return 0
	}
	var found []int32
	for _, w := range workloads {
		for _, c := range w.pod.Containers {
			for _, cp := range c.Ports {
				if cp.Name == p.TargetPort.StrVal {
					found = append(found, cp.ContainerPort)
				}
			}
		}
	}
	slices.Sort(found)
	if found = slices.Compact(found); len(found) == 1 {
		return found[0]
	}
	return 0
}

// clusterIPs are the Service's virtual addresses: spec.clusterIPs, or the
// older single spec.clusterIP; a headless Service ("None") has none.
func clusterIPs(s corev1.ServiceSpec) []string {
	ips := s.ClusterIPs
	if len(ips) == 0 && s.ClusterIP != "" {
		ips = []string{s.ClusterIP}
	}
	var out []string
	for _, ip := range ips {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, ip)
		}
	}
	return out
}
