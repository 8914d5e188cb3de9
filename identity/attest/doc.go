// Package attest decides which SPIFFE identity a Workload API caller gets.
//
// Enters: a Caller, what the Workload API server learned about the process on
// the other end of its unix socket (kernel peer credentials uid/gid/pid, and
// the request metadata for token-based attestors). Leaves: one SPIFFE ID, or
// ErrNoIdentity, which the server turns into PermissionDenied.
//
// Table is the local-mode Attestor: an ordered list of entries, each mapping
// one selector (uid:N, gid:N, exe:/path) to a namespace/ServiceAccount; the
// first matching entry wins.
//
// TokenReview is the cluster-mode Attestor. The workload sends its projected
// ServiceAccount token (a serviceAccountToken volume with audience
// "causeway", so bound to its Pod) in the gRPC metadata key
// "causeway-sa-token" of every Workload API call; TokenFile (satoken.File, in
// a subpackage free of Kubernetes code so the sidecar can link it) is the
// client half (grpc.WithPerRPCCredentials, re-reading the file the kubelet
// rotates). The
// attestor asks the apiserver (TokenReview with the audience), and maps
// system:serviceaccount:<ns>:<sa> to spiffe://<td>/ns/<ns>/sa/<sa>. Accepted
// tokens are cached by SHA-256 for a few seconds, never past their exp.
// Revocation (deleting the Pod or ServiceAccount) therefore takes effect
// after the attestor's CacheTTL plus kube-apiserver's own 10s token cache.
//
// No goroutines. Table is immutable once built; TokenReview guards its cache
// with a mutex.
package attest
