// Package configsource is the proxy's side of the config stream (api/config/v1).
//
// What enters: the control plane's address, this proxy's node (id, cluster,
// SPIFFE identity, services, admin address), transport credentials (mTLS
// from an X509Source, or plaintext for loopback tests) and an Apply callback.
// What leaves: every config the control plane sends is decoded and passed to
// Apply; the stream carries back an ACK (Apply returned nil) or a NACK with
// the error's text (the proxy keeps its previous config).
//
// The proxy core is not imported (proxy/ depends on this package, not the
// reverse): `causeway proxy` wires Apply to (*proxy.Proxy).Apply.
//
// While the control plane is away Apply is simply not called, so the proxy
// keeps serving its last good config; Run reconnects with jittered
// exponential backoff (Backoff, capped at 5s by default) and announces the
// version it runs, so an unchanged config is not sent again.
//
// Goroutines: Run's goroutine owns the session, decodes, calls Apply and
// answers; gRPC owns its transport goroutines. Status may be read from any
// goroutine.
package configsource
