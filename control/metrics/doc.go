// Package metrics serves the SMI TrafficMetrics API (metrics.smi-spec.io
// v1alpha1) from the proxies' own Prometheus counters; no Prometheus server
// is needed.
//
// Data flow:
//
//  1. A MetricsSource reads every connected proxy's counters. HTTPSource
//     scrapes each proxy's admin /metrics (address from its sync state) and
//     keeps causeway_responses_total and causeway_response_latency_seconds,
//     summed per (direction, service, backend), and
//     causeway_inbound_peer_response_latency_seconds: requests from linked
//     clusters' callers, whose proxies this control plane does not scrape,
//     as the callee's proxy saw them (direction Peer).
//  2. Aggregator.Refresh records a scrape; Run does so every interval. View
//     subtracts the scrape about one Window (30s) back from the latest, so
//     counts cover the window (a counter that went down means the proxy
//     restarted: its current value is used).
//  3. Query turns a View and the served snapshot into SMI's JSON:
//     TrafficMetrics for namespaces and services (traffic received,
//     observed at the callers' proxies, plus the Peer traffic from linked
//     clusters), edges for services (from callers, from linked clusters as
//     Cluster resources, to callees), and per-backend items for TrafficSplits. Latencies are
//     p50/p90/p99 in ms, estimated from histogram buckets like Prometheus'
//     histogram_quantile; success_count and failure_count as SMI defines,
//     plus success_rate and requests_per_second.
//
// Types come from smi-sdk-go (metrics/v1alpha1), extended only with the
// field the SMI text has and the SDK lacks: a TrafficSplit item's backend.
//
// Goroutines: the caller owns Aggregator.Run; HTTPSource.Scrape starts one
// goroutine per proxy and waits for them. An Aggregator is safe for
// concurrent use.
package metrics
