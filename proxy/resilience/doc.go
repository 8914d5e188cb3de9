// Package resilience holds the proxy's per-request safety valves: a retry
// budget, a circuit breaker, and the rules that say which requests may be
// retried and which outcomes are worth retrying.
//
// What enters: one Deposit per original request and one Withdraw per retry
// attempt (RetryBudget); one Allow per request and one call of the returned
// done func with its outcome (Breaker); a request's method and headers, or a
// response's status, headers and trailers, or a transport error (the
// classification helpers).
// What leaves: yes/no answers, and State for metrics labels.
//
// Goroutines: none are started. Everything is called from request goroutines;
// RetryBudget and the Breaker's transitions take a short mutex, the Breaker's
// closed-state fast path is atomic only. Time comes from an optional Now
// func, else time.Now, so tests run under testing/synctest.
package resilience
