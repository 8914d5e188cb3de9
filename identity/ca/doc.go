// Package ca is a SPIFFE trust domain's certificate authority.
//
// Enters: Options (trust domain, lifetimes, a Store), calls to Rotate, and
// SPIFFE IDs to issue for. Leaves: X.509-SVIDs (leaf + intermediate, URI SAN
// only, digitalSignature, serverAuth+clientAuth), JWT-SVIDs (ES256 with kid),
// and the trust bundle (roots + JWT keys, refresh hint, sequence number).
//
// Each authority is a self-signed root, an intermediate it signed, and a JWT
// key. Rotate adds a new authority that starts signing at once; the older ones
// stay in the bundle for Options.Overlap so SVIDs they signed keep verifying,
// then Maintain drops them. Every change of the bundle bumps its sequence
// number, is saved to the Store before it is published, and closes the channel
// returned by Updated.
//
// Goroutines: none of its own. Run(ctx) is a loop the caller starts and owns;
// all other methods are safe for concurrent use.
package ca
