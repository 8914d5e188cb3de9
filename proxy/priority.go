package proxy

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-mesh/causeway/proxy/balance"
	"github.com/causeway-mesh/causeway/proxy/resilience"
)

// Failover between priority levels (spec.Endpoint.Priority): the balancer
// picks among the lowest level with an available endpoint (proxy/balance);
// this file keeps the circuit breaker out of its way and counts which level
// served.

// failoverBreaker puts the cluster's circuit breaker behind its balancer's
// priority levels: while a level stands behind the one being served, the
// failures of the served level are the balancer's to act on (it ejects the
// level's endpoints and traffic fails over), so the circuit is not asked
// and does not count them; it guards the last level, as it guards a
// cluster without levels. Without this, the failures that empty the local
// level would open the circuit and refuse the requests the next level
// could serve.
func failoverBreaker(br circuitBreaker, lb *balance.Balancer) circuitBreaker {
	if _, off := br.(alwaysClosed); off || br == nil {
		return br
	}
	return &levelBreaker{inner: br, lb: lb}
}

type levelBreaker struct {
	inner circuitBreaker
	lb    *balance.Balancer
}

func (l *levelBreaker) Allow() (func(bool), bool) {
	if l.lb.Fallback() {
		return alwaysOK, true
	}
	return l.inner.Allow()
}

func (l *levelBreaker) State() resilience.State { return l.inner.State() }

// picksCollector reads, at scrape time, how many requests each priority
// level of each cluster port has served, as causeway_upstream_picks_total:
// a rising priority="1" series is traffic failing over.
type picksCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	src  func() map[string]map[int32]uint64
}

func newPicksCollector() *picksCollector {
	return &picksCollector{desc: prometheus.NewDesc("causeway_upstream_picks_total",
		"Requests (and TCP flows) sent per upstream cluster port and endpoint priority (0 preferred; higher is failover).",
		[]string{"cluster", "priority"}, nil)}
}

func (c *picksCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *picksCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	for name, byPrio := range src() {
		for prio, n := range byPrio {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), name, strconv.Itoa(int(prio)))
		}
	}
}

// priorityPicks lists every cluster port's picks by priority, for /metrics.
func (p *Proxy) priorityPicks() map[string]map[int32]uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]map[int32]uint64, len(p.clusters))
	for _, cp := range p.clusters {
		out[cp.name] = cp.lb.PicksByPriority()
	}
	return out
}
