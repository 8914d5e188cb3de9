// Package linkerd renders Causeway's canonical model as Linkerd resources
// (target: Linkerd 2.18, see Version), so SMI configuration can move onto
// Linkerd.
//
// What enters: a *spec.Snapshot from spec.Build. What leaves: objects
// (*unstructured.Unstructured, sorted by namespace, kind, name) and
// spec.Diagnostics naming the input file, object and field of everything
// Linkerd cannot express, and why.
//
//	TrafficSplit  -> gateway.networking.k8s.io HTTPRoute / TCPRoute with a
//	                 Service parent, exactly as adapters/gatewayapi renders
//	                 them (Linkerd reads the upstream kinds).
//	TrafficTarget -> MeshTLSAuthentication (identities
//	                 <sa>.<ns>.serviceaccount.identity.linkerd.<td>), one
//	                 Server per workload port, and per rule an
//	                 AuthorizationPolicy: targeting an inbound HTTPRoute
//	                 (parent: the Servers) for HTTPRouteGroup rules, the
//	                 Server itself for TCPRoute rules.
//	strict mode   -> Namespace annotation default-inbound-policy: deny.
//
// Everything here is a pure function; no goroutines.
package linkerd
