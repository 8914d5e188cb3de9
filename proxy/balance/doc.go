// Package balance picks one endpoint of an upstream for each request.
//
// What enters: the endpoint addresses of one upstream (Update, from the config
// swap goroutine), and for every request a Pick followed by exactly one
// Pick.Done with the observed round-trip time and whether it failed.
// What leaves: an address per request, and Stats for /metrics and /config.
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
//  4. Panic mode (Envoy): when every endpoint is ejected the balancer still
//     picks among all of them rather than failing the request.
//
// Goroutines: none are started. Pick and Done run on request goroutines and
// are lock-free except for a per-endpoint mutex around the EWMA update;
// ejection transitions and Update, which are rare, take the Balancer's mutex.
// The endpoint list is an immutable slice swapped atomically by Update.
package balance
