// Package ca is a SPIFFE trust domain's certificate authority.
//
// Enters: Options (trust domain, lifetimes, a Store), calls to Rotate, and
// SPIFFE IDs to issue for. Leaves: X.509-SVIDs (leaf + intermediate, URI SAN
// only, digitalSignature, serverAuth+clientAuth), JWT-SVIDs (ES256 with kid),
// and the trust bundle (roots + JWT keys, refresh hint, sequence number).
//
// Each authority is a self-signed root, an intermediate it signed, and a JWT
// key. Rotation has two steps, as in SPIRE: Prepare publishes a successor in
// the bundle without signing with it, Activate switches signing to it. In
// between, peers and workloads fetch the bundle holding both roots, so no one
// is shown a certificate from a root they have not heard of (a federated peer
// authenticates our https_spiffe endpoint with the bundle it fetched last).
// After activation the old authority stays trusted for Options.Overlap, then
// Maintain drops it. Maintain prepares at half of the active root's life and
// activates at five sixths; Rotate does both at once for emergencies.
// Every change of the bundle's contents bumps its sequence number, and every
// change is saved to the Store before it is published and closes the channel
// returned by Updated.
//
// Stores: DirStore keeps the state in a 0600 file (local mode); SecretStore
// keeps it in a Kubernetes Secret (cluster mode). Both refuse a save over a
// state the saving instance has not read: SecretStore writes only at the
// resourceVersion it last read, and a CA saves a DirStore under a flock of
// the directory after checking the file is still what it last read or
// wrote. Of two instances saving at once one gets ErrConflict, nothing is
// overwritten, and Run reloads the winner's state.
//
// Replicas: several control planes may serve one CA from one Secret. Only
// the holder of a Lease rotates (RunShared runs Run during each won term);
// every replica, the leader too, reads the store every follow interval and
// adopts a different state (Reload), waking Updated, so all of them serve
// the same bundle and sign with the same authority within one interval.
// Run itself reloads when a save fails with ErrConflict (two replicas that
// both believe they lead), and a new leader reloads before its first pass.
//
// Goroutines: Run(ctx), Follow(ctx) and RunShared(ctx) are loops the caller
// starts and owns; RunShared's Follow and Lease-term goroutines end before
// it returns. All other methods are safe for concurrent use.
package ca
