// Package istio renders Causeway's canonical model as Istio resources, so
// SMI configuration can move onto Istio and Istio workloads can reach
// services through Causeway's east-west gateway (DESIGN §7, across meshes).
//
// What enters: a *spec.Snapshot from spec.Build and Options (cluster DNS
// domain, this cluster's gateway addresses). What leaves: objects
// (*unstructured.Unstructured, sorted by namespace, kind, name) and
// spec.Diagnostics naming the input file, object and field of everything
// Istio cannot express, and why.
//
//	TrafficSplit     -> VirtualService networking.istio.io/v1 per root:
//	                    http routes in Causeway's order (matched splits,
//	                    then the default, else the root), tcp routes per
//	                    port; weights as whole percentages.
//	TrafficTarget    -> AuthorizationPolicy security.istio.io/v1, ALLOW,
//	                    principals <td>/ns/<ns>/sa/<sa>; paths reduced to
//	                    exact/prefix strings (gatewayapi.PathForms), the rest
//	                    left out (denied) with a diagnostic.
//	strict mode      -> AuthorizationPolicy causeway-deny-all per namespace.
//	export / import  -> ServiceEntry + DestinationRule to a Causeway gateway.
//
// Everything here is a pure function; no goroutines.
package istio
