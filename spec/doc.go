// Package spec is Causeway's canonical model: the one shape every input is
// translated into and every output is rendered from.
//
// What enters: fragments built by adapters (SMI, manifests, Kubernetes
// informers, federation), each a plain Go value of the types in types.go, plus
// the diagnostics the adapter produced while translating.
//
// What leaves:
//
//  1. Build merges fragments into a Snapshot: validated (every problem at once,
//     each with a path), sorted, reference-consistent and content-hashed, so the
//     same inputs in any order give byte-identical JSON and the same Version.
//  2. Compile(snapshot, node) gives the NodeConfig one proxy or gateway needs:
//     the inbound policy for the identities it serves and the outbound routes,
//     splits and endpoints it may use. Nothing more.
//  3. NodeConfig.Prepare turns a NodeConfig into a Table: compiled regexes and
//     lookup maps that answer "where does this request go?" (RouteHTTP) and "may
//     this caller do this?" (Authorize). The proxy and `causeway check routes`
//     both call these, so the tool and the data plane cannot disagree.
//
// Goroutines: none. Every value here is immutable once built; a Table may be
// shared by any number of goroutines.
//
// Imports: the standard library and go-spiffe's spiffeid only. No Kubernetes, no
// SMI, no gRPC: a change in those APIs must stop at adapters/ (DESIGN.md §1).
package spec
