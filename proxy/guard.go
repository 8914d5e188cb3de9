package proxy

import (
	"github.com/causeway-mesh/causeway/proxy/balance"
	"github.com/causeway-mesh/causeway/proxy/resilience"
)

// circuitBreaker guards one upstream cluster port: *resilience.Breaker, or
// alwaysClosed when the policy disables breaking. Allow returns ok=false
// while the circuit is open; otherwise done must get the outcome.
type circuitBreaker interface {
	Allow() (done func(success bool), ok bool)
	State() resilience.State
}

// alwaysClosed is the breaker of a cluster whose policy disables breaking.
type alwaysClosed struct{}

func alwaysOK(bool) {}

func (alwaysClosed) Allow() (func(bool), bool) { return alwaysOK, true }
func (alwaysClosed) State() resilience.State   { return resilience.Closed }

func newBreaker(bp BreakerPolicy) circuitBreaker {
	if bp.ConsecutiveFailures < 0 {
		return alwaysClosed{}
	}
	return resilience.NewBreaker(resilience.BreakerOptions{ConsecutiveFailures: bp.ConsecutiveFailures, OpenFor: bp.OpenFor.D()})
}

func newBudget(rp RetryPolicy) *resilience.RetryBudget {
	return resilience.NewRetryBudget(resilience.RetryBudgetOptions{Ratio: rp.BudgetRatio, MinPerSecond: rp.MinPerSecond, TTL: rp.TTL.D()})
}

// newBalancer is P2C over peak-EWMA with outlier ejection and priority
// failover (proxy/balance); an unset OutlierPolicy field keeps that
// package's default (Envoy's: eject after 5 consecutive failures for 30 s,
// doubling). The breaker guards the cluster as a whole; ejection takes
// single bad endpoints out of it.
func newBalancer(op OutlierPolicy) *balance.Balancer {
	return balance.New(balance.Options{ConsecutiveFailures: op.ConsecutiveFailures, FailoverFailures: op.FailoverFailures,
		BaseEjectionTime: op.BaseEjectionTime.D(), MaxEjectionTime: op.MaxEjectionTime.D()})
}
