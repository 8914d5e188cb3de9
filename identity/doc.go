// Package identity is Causeway's SPIFFE identity provider (DESIGN.md §4). This
// package holds only the SPIFFE ID naming rules shared by its subpackages; the
// parts live beside it:
//
//	ca/          the trust domain's CA: root + intermediate, X.509- and JWT-SVIDs,
//	             rotation with an overlap window, persisted through a Store;
//	             replicas sharing a store follow the one Lease holder that rotates.
//	attest/      who is calling: peer credentials (uid/gid/pid) mapped to
//	             ns/sa identities by a table (local mode), or a projected
//	             ServiceAccount token checked by TokenReview (cluster mode);
//	             attest/satoken is the client half, free of Kubernetes code.
//	workloadapi/ the SPIFFE Workload API (go-spiffe's workload proto) on a unix
//	             socket, serving SVIDs from ca/ to callers named by attest/.
//	bundle/      the SPIFFE bundle endpoint (https_spiffe) and the set of
//	             federated bundles handed to workloads.
//	spiretest/   test harness that runs a real SPIRE server and agent.
//
// Data flow: a workload connects to the socket (1); the kernel's peer
// credentials enter through workloadapi's transport credentials (2); attest
// turns them into a SPIFFE ID (3); ca signs an SVID for it (4); the SVID, the
// trust bundle and federated bundles leave on the stream and are pushed again
// at half-life or on CA rotation (5). Nothing here imports cmd/ or the proxy.
package identity
