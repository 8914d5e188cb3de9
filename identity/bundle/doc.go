// Package bundle publishes and collects SPIFFE trust bundles.
//
// Endpoint is the trust domain's SPIFFE bundle endpoint (SPIFFE Trust Domain
// and Bundle §5, https_spiffe profile): it serves the bundle from a
// spiffebundle.Source (the CA, whose bundles carry a refresh hint and a
// sequence number that grows on rotation) over TLS with the server's own
// X.509-SVID, through go-spiffe's federation handler. Enters: the CA as source
// and an x509svid.Source for the serving certificate. Leaves: the bundle as
// JSON to any HTTPS client.
//
// Set holds the bundles of other trust domains (filled by federation/); the
// Workload API hands them to workloads as federated_bundles and watches
// Set.Updated to push changes.
//
// Goroutines: Endpoint.Serve runs the HTTP server on the caller's goroutine
// (net/http starts one per connection); Set has none.
package bundle
