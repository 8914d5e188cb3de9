// Package balance picks one endpoint of an upstream for each request.
//
// What enters: the endpoint addresses of one upstream, each with a failover
// priority (UpdateMembers; Update puts all at 0; from the config swap
// goroutine), for every request a Pick followed by exactly one Pick.Done
// with the observed round-trip time and whether it failed, and
// Unreachable(addr) when a connection could not be opened.
// What leaves: an address and its priority per request, Fallback for the
// proxy's circuit breaker, and Stats and PicksByPriority for /metrics and
// /config.
//
// Algorithm (DESIGN.md §5, issue 3):
//
//  1. Power of two choices: sample two distinct endpoints at random and take
//     the cheaper. This gives nearly the balance of "least loaded of all" at
//     the cost of two reads, and avoids the herd effect of always choosing the
//     global minimum from a stale view.
//  2. Cost is peak-EWMA (Finagle's PeakEwma, Linkerd's tower balancer): an
//     exponentially weighted moving average of round-trip times that jumps up
//     to a new peak at once and decays towards zero with the time since the
//     last sample, multiplied by an in-flight penalty (1 + k*inflight). Decay
//     to zero matters: an endpoint that was slow once is tried again later
//     instead of being starved forever.
//  3. Outlier detection (Envoy's consecutive-5xx detector): an endpoint with
//     ConsecutiveFailures failures in a row is ejected for
//     BaseEjectionTime * 2^n (n = earlier ejections, capped at MaxEjectionTime),
//     never more than MaxEjectionPercent of the endpoints. When its time is up
//     it receives one probe request: success returns it, failure ejects it
//     again for longer.
//  4. Priority levels (Envoy's priorities, Istio's locality failover,
//     Consul's failover targets): endpoints are grouped by priority, and
//     Pick uses only the lowest level that has an available endpoint (in
//     rotation, or due for its probe); P2C and peak-EWMA work inside that
//     level. A level is unavailable when its endpoints are not members
//     (not ready) or all ejected; a level with another behind it is ejected
//     sooner (FailoverFailures, default 2, or at once on Unreachable) and
//     without the MaxEjectionPercent bound, because its traffic has
//     somewhere to go. Its probes bring it back, and traffic with it.
//  5. Panic mode (Envoy): when every endpoint of every level is ejected the
//     balancer still picks among all of them rather than failing the
//     request.
//
// Goroutines: none are started. Pick and Done run on request goroutines and
// are lock-free except for a per-endpoint mutex around the EWMA update;
// ejection transitions and Update, which are rare, take the Balancer's mutex.
// The endpoint list is an immutable slice swapped atomically by Update.
package balance
