// Package rest is the control plane's HTTP API (gorilla/mux, JSON).
//
// What enters: requests, answered from a *control.Server (last good
// snapshot, diagnostics, per-proxy sync state) and a *metrics.Aggregator.
// What leaves:
//
//	GET /api/v1/services|routes|splits|policies  {"version", "items"} from the served snapshot
//	GET /api/v1/snapshot                          {"version", "snapshot"}: the whole snapshot
//	GET /api/v1/diagnostics                       last update: served version, rejected?, diagnostics
//	GET /api/v1/proxies[/{id}]                    sync state: connected since, sent/ACKed/NACKed versions, NACK reason, nonce
//	GET /api/v1/links                             {"items"}: federation links (state, imports, acked versions)
//	POST /api/v1/links/tokens {"ttl": "10m"}      {"token", "expires"}: a one-time peering token
//	POST /api/v1/links {"token": "..."}           applies a peer's token; 502 with the peer's reason if refused
//	DELETE /api/v1/links/{cluster}                revokes the link on both sides (204; 404 unknown)
//	GET /apis/metrics.smi-spec.io/v1alpha1/...    SMI TrafficMetrics: APIResourceList, namespaces[/{ns}],
//	                                              namespaces/{ns}/{services|trafficsplits}[/{name}[/edges]]
//
// Errors are {"error": "..."} with 404 (unknown path or object) or 503 (no
// snapshot yet, metrics or federation disabled), 400 (bad request body).
//
// Goroutines: none of its own; net/http runs handlers, which only read
// state that Server and Aggregator guard.
package rest
