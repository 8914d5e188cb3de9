package local

import (
	"fmt"
	"slices"
	"strings"

	"github.com/causeway-mesh/causeway/spec"
)

// LabelWorkload marks the endpoints Attach adds with the workload's name.
const LabelWorkload = "causeway.dev/workload"

// InboundAddr says where a workload's sidecar accepts mesh traffic. It is
// chosen by whoever runs the sidecar (internal/localmesh), not written in
// the manifests: the address is an implementation detail of the local run.
type InboundAddr func(w *Workload) (host string, port int32)

// Attach adds each workload's endpoint and identity to the Service it backs
// in in (built by the other translators). The endpoint is the sidecar's
// inbound address; its ServicePort is the Service port whose targetPort (or
// port, when it has none) is the workload's port, since that is the port the
// sidecar hands the traffic to. A workload whose Service is missing, or
// whose port no Service port targets, is an error on the Workload.
func Attach(in *spec.Input, ws []Workload, inbound InboundAddr) spec.Diagnostics {
	var diags spec.Diagnostics
	for i := range ws {
		w := &ws[i]
		if w.Service == "" {
			continue
		}
		key := w.ServiceKey()
		found := false
		for j := range in.Services {
			svc := &in.Services[j]
			if svc.Key != key {
				continue
			}
			found = true
			k := slices.IndexFunc(svc.Ports, func(p spec.Port) bool { return targetOf(p) == w.Port })
			if k < 0 {
				diags.Errorf(w.Origin.Source, w.Origin.Object, "spec.port", "%d is not the target port of any port of Service %s (%s)", w.Port, key, describePorts(svc.Ports))
				continue
			}
			host, port := inbound(w)
			// Copies, so the caller's Input shares nothing with what it
			// passed in (a fragment may be reused for the next load).
			svc.Endpoints = append(slices.Clone(svc.Endpoints), spec.Endpoint{
				Addr: host, Port: port, ServicePort: svc.Ports[k].Port, Ready: true,
				Labels: map[string]string{LabelWorkload: w.Key.Name}, Identity: w.Identity,
			})
			if !slices.Contains(svc.Identities, w.Identity) {
				svc.Identities = append(slices.Clone(svc.Identities), w.Identity)
			}
		}
		if !found {
			diags.Errorf(w.Origin.Source, w.Origin.Object, "spec.service", "Service %s is not among the inputs", key)
		}
	}
	return diags
}

func targetOf(p spec.Port) int32 {
	if p.TargetPort != 0 {
		return p.TargetPort
	}
	return p.Port
}

func describePorts(ps []spec.Port) string {
	if len(ps) == 0 {
		return "it has no ports"
	}
	var b strings.Builder
	b.WriteString("ports: ")
	for i, p := range ps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d->%d", p.Port, targetOf(p))
	}
	return b.String()
}
