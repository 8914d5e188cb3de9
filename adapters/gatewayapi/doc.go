// Package gatewayapi renders Causeway's canonical model as Kubernetes
// Gateway API resources for service meshes (GAMMA), the spec -> world half
// of DESIGN §1's adapters (the reverse, GAMMA -> spec, is still to come).
//
// What enters: a *spec.Snapshot from spec.Build. What leaves: objects
// (*unstructured.Unstructured, sorted by namespace, kind, name) and
// spec.Diagnostics naming the input file, object and field of everything
// the target cannot express.
//
//	TrafficSplit (per root service and HTTP port) -> HTTPRoute v1, parentRef
//	    the root Service (group "", kind Service); one rule per referenced
//	    HTTPRouteGroup (matches ORed, one HTTPRouteMatch per method), then a
//	    rule without matches for the rest: the split without matches, else
//	    the root itself. Weights keep their exact ratios (RelativeWeights).
//	TrafficSplit on a TCP/UDP port -> TCPRoute/UDPRoute v1alpha2
//	    (experimental channel), or a diagnostic with Options.Standard.
//	TrafficTarget -> diagnostic: GAMMA has no standard access policy.
//
// The helpers for reducing SMI regexes to exact and prefix strings
// (PathForms, HeaderForms), for weights and for Plans are exported because
// adapters/istio and adapters/linkerd render the same model the same way.
//
// Everything here is a pure function; no goroutines.
package gatewayapi
