// Package attest decides which SPIFFE identity a Workload API caller gets.
//
// Enters: a Caller, what the Workload API server learned about the process on
// the other end of its unix socket (kernel peer credentials uid/gid/pid, and
// the request metadata for token-based attestors). Leaves: one SPIFFE ID, or
// ErrNoIdentity, which the server turns into PermissionDenied.
//
// Table is the local-mode Attestor: an ordered list of entries, each mapping
// one selector (uid:N, gid:N, exe:/path) to a namespace/ServiceAccount; the
// first matching entry wins. Cluster mode plugs a TokenReview attestor into the
// same interface (issue 5). No goroutines; Table is immutable once built.
package attest
