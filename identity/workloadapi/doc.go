// Package workloadapi serves the SPIFFE Workload API (go-spiffe's workload
// proto) on a unix socket, so go-spiffe's workloadapi client, and anything else
// written for a SPIRE agent, gets its SVIDs from Causeway unchanged.
//
// Enters: connections on the socket. The transport credentials (peercred.go)
// read the peer's uid/gid/pid from the kernel (SO_PEERCRED) once per
// connection and attach them to the gRPC peer. Every RPC checks the
// `workload.spiffe.io: true` header (as SPIRE does, so browsers and stray HTTP
// clients cannot use the socket), then asks the Attestor for the caller's
// SPIFFE ID; an unknown caller gets PermissionDenied and nothing else.
//
// Leaves: X.509-SVIDs with the trust bundle and federated bundles
// (FetchX509SVID), bundles (FetchX509Bundles, FetchJWTBundles), JWT-SVIDs
// (FetchJWTSVID) and token validation (ValidateJWTSVID).
//
// Goroutines: gRPC owns one goroutine per stream. A FetchX509SVID stream's
// goroutine sleeps until its SVID's half-life, a CA change (rotation) or a
// federated bundle change, then sends only if the response changed. SVIDs
// are cached per SPIFFE ID (ca.SVIDSource), so all streams of one identity
// share one key and certificate.
package workloadapi
