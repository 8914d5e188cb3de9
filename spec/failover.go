package spec

import (
	"maps"
	"slices"
)

// FailoverPriority is the priority BuildWithImports gives linked clusters'
// gateway endpoints in the one name across clusters, behind every local
// endpoint (which keep theirs, normally 0).
const FailoverPriority int32 = 1

// withFailover gives each service exported by linked clusters its one name
// across clusters (DESIGN.md §7), the name it has in its own cluster, ns/name:
//
//   - a local Service ns/name that this cluster exports too keeps its
//     endpoints and gains every linked cluster's gateway endpoints for it,
//     one priority behind its own (FailoverPriority when its own are at 0),
//     and the peers' identities, so the inner mTLS accepts either side;
//   - a local Service ns/name that is not exported stays as it is, with a
//     warning: a peer never adds endpoints to a local name this cluster
//     has not chosen to share;
//   - when no Service here has that name, ns/name is created from the
//     imports (their gateway endpoints at FailoverPriority, no ClusterIPs,
//     not exported again), so a caller may use one name whichever cluster
//     serves it, as with Istio's cluster-wide hostnames and Consul's
//     failover to peers. A local Service of that name, once added, wins.
//
// A gateway endpoint serves only the ports that both sides have with the
// same number and protocol (the gateway refuses any other); an import that
// shares none is no failover target. The imports' own <name>-<cluster>
// services are untouched. services holds the local Services first (nLocal of
// them), then the accepted imports; the result is services with the merges
// made and created Services appended.
func withFailover(services []Service, nLocal int, ds *Diagnostics) []Service {
	type source struct {
		imp *Service
		eps []Endpoint
	}
	groups := map[Key][]source{}
	for i := nLocal; i < len(services); i++ {
		imp := &services[i]
		byRemote := map[Key][]Endpoint{}
		for _, e := range imp.Endpoints {
			if e.Gateway.IsZero() || e.Remote.Namespace == "" || e.Remote.Name == "" {
				continue
			}
			k := Key{Namespace: e.Remote.Namespace, Name: e.Remote.Name}
			byRemote[k] = append(byRemote[k], e)
		}
		for k, eps := range byRemote {
			groups[k] = append(groups[k], source{imp: imp, eps: eps})
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(groups), compareKey) {
		srcs := groups[k]
		slices.SortFunc(srcs, func(a, b source) int { return compareKey(a.imp.Key, b.imp.Key) })
		idx := slices.IndexFunc(services, func(s Service) bool { return s.Key == k })
		first := srcs[0].imp
		var target Service
		switch {
		case idx >= nLocal:
			ds.Warnf(first.Origin.Source, first.Origin.Object, "", "no failover name %s: an import already has that name", k)
			continue
		case idx >= 0 && !services[idx].Export:
			ds.Warnf(services[idx].Origin.Source, services[idx].Origin.Object, "",
				"%s is exported by linked clusters (as %s) but not by this cluster: it does not fail over to them until it is exported here", k, first.Key)
			continue
		case idx >= 0:
			target = services[idx]
			target.Identities = slices.Clone(target.Identities)
			target.Endpoints = slices.Clone(target.Endpoints)
		default:
			target = Service{Key: k, Ports: slices.Clone(first.Ports),
				Origin: Origin{Source: first.Origin.Source, Object: Object{Kind: "ServiceImport", Namespace: k.Namespace, Name: k.Name}}}
		}
		prio := FailoverPriority
		if idx >= 0 {
			for _, e := range target.Endpoints {
				prio = max(prio, e.Priority+1)
			}
		}
		for _, src := range srcs {
			shared := sharedPorts(target.Ports, src.imp.Ports)
			if len(shared) == 0 {
				ds.Warnf(src.imp.Origin.Source, src.imp.Origin.Object, "",
					"import %s shares no port (same number and protocol) with %s: not a failover target for it", src.imp.Key, k)
				continue
			}
			for _, id := range src.imp.Identities {
				if !slices.Contains(target.Identities, id) {
					target.Identities = append(target.Identities, id)
				}
			}
			target.Endpoints = append(target.Endpoints, failoverEndpoints(src.eps, shared, len(shared) == len(target.Ports), prio)...)
		}
		if idx >= 0 {
			services[idx] = target
		} else {
			services = append(services, target)
		}
	}
	return services
}

// sharedPorts lists the port numbers of mine that theirs has with the same
// protocol, in mine's order.
func sharedPorts(mine, theirs []Port) []int32 {
	var out []int32
	for _, p := range mine {
		if slices.ContainsFunc(theirs, func(t Port) bool { return t.Port == p.Port && t.Protocol == p.Protocol }) {
			out = append(out, p.Port)
		}
	}
	return out
}

// failoverEndpoints copies gateway endpoints at priority prio. When the
// import serves every port of the target (all), an endpoint keeps its
// ServicePort (0: every port); otherwise it is repeated once per shared
// port, so no proxy asks the gateway for a port the peer does not export.
func failoverEndpoints(eps []Endpoint, shared []int32, all bool, prio int32) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		e.Priority = prio
		e.Labels = maps.Clone(e.Labels)
		switch {
		case e.ServicePort != 0:
			if slices.Contains(shared, e.ServicePort) {
				out = append(out, e)
			}
		case all:
			out = append(out, e)
		default:
			for _, p := range shared {
				e.ServicePort = p
				out = append(out, e)
			}
		}
	}
	return out
}
