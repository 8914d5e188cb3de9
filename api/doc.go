// Package api holds Causeway's wire protocols: .proto files and the Go code
// generated from them, committed so that building Causeway needs no protoc.
// `make generate` (scripts/protoc.sh) reproduces the generated files with a
// pinned protoc-gen-go and protoc-gen-go-grpc; TestGeneratedCodeIsFresh fails
// when they drift from the .proto files.
//
// config/v1 is the config stream between the control plane and every proxy
// or gateway (DESIGN.md §6), state of the world like xDS SotW:
//
//  1. The proxy opens StreamConfig and sends its Node (id, cluster, SPIFFE
//     identity, services, admin address) and the version it already runs.
//  2. The control plane answers with the node's whole compiled config, a
//     version (spec.NodeConfig.Version, a content hash) and a fresh nonce.
//  3. The proxy applies it and answers with the nonce: version_info set to
//     the new version is an ACK; version_info left at the previous version
//     with error_detail set is a NACK, and the proxy keeps running the old
//     config.
//  4. The control plane sends again only when the node's compiled version
//     changes.
//
// Why the config is a typed proto (NodeConfig mirrors spec.NodeConfig field
// for field) rather than an opaque JSON payload with a content type: the
// schema is then written down in one language-neutral place, a proxy written
// in another language can consume it, protoc checks field numbering so old
// proxies keep decoding new configs, and decoding validates every SPIFFE ID
// before the proxy sees it. The price is convert.go, which a new spec field
// must be added to; the round-trip fuzz test in config/v1 catches a field
// that is dropped on the way.
//
// federation/v1 is the stream between two linked control planes (DESIGN.md
// §7): Hello (with a peering proof on first contact), Exports with version
// and nonce, Ack/NACK, Heartbeat and Revoke, the same both ways; package
// federation runs it.
//
// Goroutines: none here; gRPC owns the stream goroutines, control/ and
// proxy/configsource own the logic on each side.
package api
