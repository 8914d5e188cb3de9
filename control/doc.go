// Package control is Causeway's control plane: it turns inputs into a
// snapshot and streams each proxy the compiled config it needs (DESIGN.md §6).
//
// Data flow:
//
//  1. A Source loads the inputs into a spec.Snapshot plus diagnostics and
//     calls Server.Publish: DirSource watches a manifest directory with
//     fsnotify, debounced, and loads it with ManifestLoader
//     (adapters/pipeline); ServeFunc wraps adapters/kube.Watcher.Serve for a
//     cluster, without control importing client-go. With federation,
//     the loader merges the linked clusters' imports into the input before
//     spec.Build (pipeline.Options.Imports, spec.BuildWithImports), both
//     sources load again when the imports change (their Reload channel),
//     and Observed hands each accepted load to federation's SetLocal.
//  2. Publish keeps the last good snapshot: a load whose diagnostics hold an
//     error is recorded (Status, the REST API) and never replaces it.
//  3. Each accepted snapshot is offered to every connected stream through a
//     1-buffered, newest-wins channel, so a slow proxy never blocks the
//     publisher and never sees a backlog.
//  4. A stream compiles the snapshot for its node (spec.Compile) and sends
//     it only when the compiled version differs from what the node last got
//     or said it runs: a change to one workload's policy reaches that
//     workload's proxy and no other.
//  5. The proxy ACKs or NACKs by nonce; SyncState records connected-since,
//     last sent, last ACKed, last NACK and its reason, per node.
//
// Identity: with MTLS credentials the node's identity is the SPIFFE ID of
// its client X.509-SVID, and a node claiming another is refused. Options
// without Creds serve plaintext and trust claims: insecure, for loopback
// tests only.
//
// Goroutines: the caller owns Source.Run and Server.Serve. gRPC owns one
// goroutine per stream (StreamConfig), which starts one reader goroutine
// that ends with the stream. Stop ends every stream, then the server.
//
// Subpackages: control/rest serves the REST and SMI metrics API over a
// *Server; control/metrics scrapes proxies and aggregates TrafficMetrics;
// control/controltest holds test fixtures; control/kubeint is the end-to-end
// test of `causeway control --kube` on a real kube-apiserver.
package control
