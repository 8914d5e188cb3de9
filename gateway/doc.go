// Package gateway is Causeway's east-west gateway (DESIGN.md §5 and §7, the
// multi-cluster contract's "Data path" 2): the one door through which other
// clusters' sidecars reach this cluster's exported services.
//
// # What enters
//
// TLS connections on Options.Listen from sidecars of linked clusters. A
// sidecar that sends to an imported service (an endpoint with Gateway set,
// proxy/gatewayhop.go) opens mTLS to the gateway with the SNI
//
//	<port>.<name>.<namespace>.svc.<this trust domain>
//
// and, inside that connection, mTLS straight to the destination sidecar,
// then the 8-byte port preamble (proxy/doc.go). The gateway terminates only
// the outer TLS: it never sees the inner plaintext, and the destination
// authorizes the original caller's SPIFFE ID against its TrafficTargets.
//
// Configs enter through Apply: a spec.NodeConfig compiled for the gateway's
// node (spec.Node{ID: "<cluster>-gateway", Identity:
// spiffe://<td>/ns/causeway-system/sa/causeway-gateway}, no Services), from
// the control plane's config stream (Run, proxy/configsource) or a static
// file. The gateway reads Upstreams (Export, Ports) and Clusters (Endpoints);
// a refused config leaves the previous one in force. The swap is one atomic
// pointer: a connection is routed against the state it loaded. Relayed
// connections keep their destination through endpoint changes; those to a
// port the new config no longer exports are closed, so withdrawing an
// export also withdraws it from pooled, long-lived connections.
//
// # Checks, in order (each refusal counted by reason)
//
//  1. TLS: a plaintext caller is not_tls. The caller must present an SVID
//     from a trust domain whose bundle Options.Bundles has (its own, or one
//     federated by a link and delivered by the Workload API):
//     untrusted_caller when the trust domain is unknown, handshake for any
//     other failure (no certificate, bad chain, timeout).
//  2. SNI: bad_sni unless it parses (ParseSNI); foreign_trust_domain unless
//     it names the gateway's own trust domain (from its SVID).
//  3. Config: no_config before the first Apply; unknown_service,
//     not_exported (an Upstream without Export), unknown_port, udp_port
//     (there is no DTLS to carry it).
//  4. Endpoint: a ready endpoint of that service that is a Causeway sidecar
//     (Identity set, or ServicePort 0) serving the port, chosen by
//     proxy/balance (P2C over peak-EWMA; the pick stays in flight for the
//     connection's life); no_endpoint when there is none, dial_failed when
//     it does not accept. A TrafficSplit rooted at the exported service is
//     not applied here: the caller's own sidecar already chose the service.
//
// # What leaves
//
// Bytes both ways between caller and destination (relay.go: why it copies
// through pooled buffers instead of splicing), and on the admin server
// (Options.Admin; /live, /ready: 200 once a config is in force, /metrics:
// the gateway's own Prometheus registry, /config: the config in force and
// every exported port with its endpoints):
//
//	causeway_gateway_refused_total{reason}
//	causeway_gateway_connections_total{service}   forwarded, "ns/name:port"
//	causeway_gateway_active_connections
//	causeway_gateway_bytes_total{service, direction}
//	causeway_gateway_config_updates_total{result}
//	causeway_gateway_revoked_connections_total
//
// Unlinking a cluster removes its bundle from the Workload API's federated
// bundles; with Options.BundlesUpdated (Run wires the X509Source's Updated)
// the gateway then closes the connections it relays for that trust domain,
// not only new handshakes.
//
// # Goroutines
//
// New starts the accept loop, the admin server and, with BundlesUpdated,
// one goroutine that sweeps relayed callers when the bundles change. Each connection is
// served on its own goroutine (handshake, checks, dial, then one direction
// of the relay) plus one more for the other direction while relaying.
// Apply runs on the caller's goroutine, serialised by a mutex; connections
// never take it. Close closes the listeners and every live connection and
// waits for all of these goroutines. Run blocks on the caller's goroutine;
// the Workload API source and the config stream own theirs, and all are
// gone when it returns.
package gateway
