// Package integration holds tests that join pieces owned by different
// packages the way a deployment does: Causeway proxies with SVIDs from a real
// SPIRE agent, and proxies whose SVIDs rotate under steady load. It has no
// production code.
package integration
