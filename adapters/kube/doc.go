// Package kube turns the Kubernetes core kinds Causeway reads into the
// canonical model.
//
// What enters: adapters.Object values (from adapters/manifest, or later from
// informers) of kinds Namespace, Service, ServiceAccount, Pod and Endpoints
// (v1), EndpointSlice (discovery.k8s.io/v1) and Deployment, StatefulSet,
// DaemonSet, ReplicaSet (apps/v1), and MCS ServiceExport
// (multicluster.x-k8s.io/v1alpha1). Each is decoded strictly into its
// k8s.io/api type, so unknown or duplicate fields are diagnostics with the
// field path.
// What leaves: a spec.Input fragment holding one spec.Service per Service,
// with its ports (and the protocol each speaks), the SPIFFE identities of the
// workloads its selector picks, and the endpoints of its EndpointSlices (or
// Endpoints), and Export set when the Service carries the label or
// annotation causeway.dev/export: "true" or a ServiceExport names it (the
// multi-cluster contract; federation/ offers exported services to linked
// clusters); plus spec.Diagnostics. Every model object carries a spec.Origin.
//
// The translate*.go files are pure functions: no clients, no goroutines, no
// clock. Watching a cluster is a separate concern that feeds them Objects:
// the Watcher (watch*.go, its goroutines described in watch.go) keeps
// informers for DefaultResources, MCS ServiceExports included; a custom kind
// the apiserver does not serve is skipped with a warning and looked for
// again every WatchOptions.Rediscover (watch_discover.go).
package kube
