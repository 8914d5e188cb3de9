// Package local reads Causeway's local-mode kinds, causeway.dev/v1alpha1
// (DESIGN.md §8): Workload (serviceAccount, service, port, command, env,
// outbound), Mesh (mode, trustDomain; also read under deploy/crds' name
// MeshConfig), Cluster (name, trustDomain, gatewayPort, adminPort: one per
// subfolder of a multi-cluster folder) and ClusterLink (clusters to link).
// internal/localmesh runs them: a control plane, CA, Workload API and
// east-west gateway per Cluster, linked through federation per
// ClusterLink.
//
// What enters: adapters.Object values of those kinds (from adapters/manifest).
// Each is decoded strictly (unknown or duplicate fields are diagnostics with
// the field path) and checked: names, ports in range, one owner per loopback
// port, upstream service names, mode and trust domain.
//
// What leaves, in two steps that stay pure:
//
//  1. Decode gives a Result: the typed local-mode data `causeway up`
//     (internal/localmesh) acts on — which processes to start, on which
//     ports, as which identity — plus diagnostics. Translate is Decode seen
//     from adapters/pipeline's registry: a spec.Input fragment carrying the
//     Mesh's mode, so `causeway validate` checks these kinds like any other.
//  2. Attach adds what a Workload means to the model to an Input that other
//     translators built: an endpoint on its Service (the sidecar's inbound
//     address, ServicePort the port whose target is the workload's port) and
//     the workload's SPIFFE identity among the Service's identities. It is a
//     separate step because the Service comes from the kube translator, and
//     the sidecar's inbound address is chosen by whoever runs the sidecar.
//
// Nothing in spec/ knows about local mode: these types live here.
// No goroutines, no clock, no I/O.
package local
