// Package federation links this cluster's control plane with other
// clusters' (DESIGN.md §7): peering tokens, the federation stream, imports
// and federated trust bundles.
//
// Peering. Generate(ttl) issues a Token: this cluster's name, trust domain,
// federation addresses, CA bundle, a token ID and a one-time 32-byte secret,
// with an expiry; Encode makes it one line. The other cluster calls Apply:
//
//  1. it dials one of the token's addresses with TLS, presenting its own
//     X.509-SVID and accepting only a server certificate that chains to the
//     token's bundle and names the token's trust domain;
//  2. its Hello carries Peering{token ID, its own bundle, proof}, where the
//     proof is an HMAC with the secret over the token ID, its cluster and
//     trust domain, its bundle and the certificate it presented: the secret
//     never travels and a proof cannot be replayed with another key;
//  3. the issuer looks the token up (unknown, already used and expired
//     tokens are refused, each with its own message, as PermissionDenied),
//     verifies the client certificate against the bundle in the Hello,
//     checks the proof, marks the token used and records the link.
//
// From then on both sides hold each other's bundle in their bundle.Set and
// every reconnect is plain SPIFFE mTLS against it, pinned to the SPIFFE ID
// each control plane proved at peering: any workload of the peer's trust
// domain chains to the same bundle, but only that control plane may speak
// for the cluster.
//
// Stream (api/federation/v1). Symmetric after the Hellos: each side sends
// Exports (bundle, gateway addresses and ID, exported services, a content
// version and a nonce) at once, after SetLocal changes them and after the
// local CA's bundle changes; the other ACKs, or NACKs with the reason and
// keeps the previous exports. Heartbeats every Options.Heartbeat; a session
// silent for Options.Timeout ends, and a link silent that long is marked
// failed (its imports stay, their endpoints become not ready). Revoke, sent
// by Remove, makes the peer drop every import and our bundle; a dialler the
// peer no longer knows ("not linked") drops the link too.
//
// Enters: Options (cluster, trust domain, SVID, local bundle, gateway
// addresses and ID), SetLocal(snapshot), SetGateways (new gateway addresses,
// sent to peers at once) and SetAdvertise (addresses for new tokens), both
// fed by `causeway control` from the load balancers' status,
// Generate/Apply/Remove calls, connections on Serve's listener. Leaves: Imports() (services named
// <name>-<cluster> with one endpoint per peer gateway, Ready when the link
// is active and the gateway passed its last probe, Gateway and Remote set,
// plus a spec.Link per peer), Changes() (1-buffered, fires when Imports
// would differ), the peers' bundles in Options.Federated, List() for the
// REST API.
//
// Goroutines:
//   - Serve runs the gRPC server on the caller's goroutine; gRPC owns one
//     goroutine per incoming stream, which runs the session.
//   - Apply starts one dialler goroutine per link it creates; it runs the
//     session, then reconnects with jittered exponential backoff until the
//     link is removed or Close. Links.wg tracks them.
//   - Each session (either side) has one reader goroutine that ends with
//     its stream; only the session goroutine sends.
//   - Run (owned by the caller) probes gateways and fails silent links;
//     each probe round starts one short goroutine per gateway address.
//
// Persistence: with a Store (Options.Store, or Options.StateFile for a
// FileStore) each link (peer cluster, trust domain, control plane ID,
// addresses to dial, newest bundle) is written on every change and
// restored by New, which puts the bundles back into the set and restarts
// the diallers; imports are not saved, the peer resends them. FileStore is
// a 0600 file replaced by rename; SecretStore is a Kubernetes Secret
// written only at the resourceVersion last read (ErrConflict otherwise, as
// identity/ca's SecretStore). Without a store links live in memory: after a
// restart the peer's dialler is refused as "not linked" and drops its side,
// so both ends agree and the operator peers again. Issued tokens are never
// saved.
//
// Followers. The store is also how the peers' bundles leave this process:
// a BundleFollower (in `causeway identity serve`, the node agent) reads the
// same store every interval and keeps a bundle.Set that its Workload API
// serves as federated_bundles, so sidecars outside the control process
// trust linked clusters; a link removed here leaves the store and, at the
// follower's next read, the set. A follower never writes; its Run is owned
// by its caller.
package federation
