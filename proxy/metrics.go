package proxy

import (
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/causeway-mesh/causeway/proxy/resilience"
)

// metrics are the proxy's Prometheus series, on the proxy's own registry (a
// test can run several proxies in one process, and nothing global leaks in).
//
// Label sets are bounded by the config: services, routes and backends come
// from the NodeConfig, status codes and gRPC codes are small sets.
type metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec   // direction, service, route, backend
	responses   *prometheus.CounterVec   // direction, service, route, backend, status_code, grpc_status, classification
	latency     *prometheus.HistogramVec // direction, service, backend, classification
	peer        *prometheus.HistogramVec // service, trust_domain, classification: inbound from linked clusters
	retries     *prometheus.CounterVec   // service
	exhausted   *prometheus.CounterVec   // service
	authz       *prometheus.CounterVec   // caller, decision
	tcpOpen     *prometheus.CounterVec   // direction, service
	tcpClose    *prometheus.CounterVec   // direction, service
	tcpBytes    *prometheus.CounterVec   // direction, service, flow (read = from client, write = to client)
	udpSession  *prometheus.CounterVec   // direction, service
	udpBytes    *prometheus.CounterVec   // direction, service, flow
	configs     *prometheus.CounterVec   // result
	transparent *prometheus.CounterVec   // direction, result
	breakers    *breakerCollector
	picks       *picksCollector // priority.go

	statusText sync.Map // int -> string, so label values are not formatted per request

	routesMu sync.Mutex
	routes   atomic.Pointer[map[routeKey]*routeSeries]
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.routes.Store(&map[routeKey]*routeSeries{})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_requests_total", Help: "HTTP requests received, by routing decision.",
	}, []string{"direction", "service", "route", "backend"})
	m.responses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_responses_total", Help: "HTTP responses sent, by status, gRPC status and classification (success/failure).",
	}, []string{"direction", "service", "route", "backend", "status_code", "grpc_status", "classification"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "causeway_response_latency_seconds", Help: "Time from request to the end of the response.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"direction", "service", "backend", "classification"})
	// Callers in linked clusters have no proxy this control plane
	// scrapes, so the SMI API counts their requests here, at the callee.
	m.peer = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "causeway_inbound_peer_response_latency_seconds", Help: "Inbound requests from callers of another trust domain (linked clusters), by that trust domain: time to the end of the response.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"service", "trust_domain", "classification"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_retries_total", Help: "Retries sent, by upstream service.",
	}, []string{"service"})
	m.exhausted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_retry_budget_exhausted_total", Help: "Retries not sent because the retry budget was spent.",
	}, []string{"service"})
	m.authz = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_inbound_authorization_total", Help: "Inbound authorization decisions by caller identity.",
	}, []string{"caller", "decision"})
	m.tcpOpen = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_tcp_connections_opened_total", Help: "TCP flows proxied at L4.",
	}, []string{"direction", "service"})
	m.tcpClose = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_tcp_connections_closed_total", Help: "TCP flows finished.",
	}, []string{"direction", "service"})
	m.tcpBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_tcp_bytes_total", Help: "Bytes proxied at L4; flow=read is client to upstream, write is upstream to client.",
	}, []string{"direction", "service", "flow"})
	m.udpSession = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_udp_sessions_total", Help: "UDP sessions (one per client address) opened.",
	}, []string{"direction", "service"})
	m.udpBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_udp_bytes_total", Help: "UDP payload bytes; flow=read is client to upstream, write is upstream to client.",
	}, []string{"direction", "service", "flow"})
	m.configs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_config_updates_total", Help: "NodeConfigs offered to Apply, by result (applied/refused).",
	}, []string{"result"})
	m.transparent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "causeway_transparent_connections_total", Help: "Redirected (transparent mode) connections by what became of them: routed, passthrough, refused, error.",
	}, []string{"direction", "result"})
	m.breakers = &breakerCollector{desc: prometheus.NewDesc("causeway_circuit_state",
		"Circuit breaker state per upstream cluster port: 0 closed, 1 open, 2 half-open.", []string{"cluster"}, nil)}
	m.picks = newPicksCollector()
	m.reg.MustRegister(m.requests, m.responses, m.latency, m.peer, m.retries, m.exhausted, m.authz,
		m.tcpOpen, m.tcpClose, m.tcpBytes, m.udpSession, m.udpBytes, m.configs, m.transparent, m.breakers, m.picks)
	return m
}

func (m *metrics) status(code int) string {
	if v, ok := m.statusText.Load(code); ok {
		return v.(string)
	}
	s := strconv.Itoa(code)
	m.statusText.Store(code, s)
	return s
}

// breakerCollector reads circuit states at scrape time rather than updating
// a gauge on every transition, so breakers stay free of metric code.
type breakerCollector struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	src  func() map[string]resilience.State
}

func (c *breakerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *breakerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	src := c.src
	c.mu.Unlock()
	if src == nil {
		return
	}
	for name, s := range src() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s), name)
	}
}

// routeKey names the per-route series of one direction.
type routeKey struct{ dir, service, route, backend string }

// routeSeries holds the resolved children of one route's series, so a
// request on the fast path neither validates nor hashes label values:
// causeway_requests_total, the latency histogram by classification, and the
// responses counter of the status it saw last (statuses repeat).
type routeSeries struct {
	m        *metrics
	key      routeKey
	requests prometheus.Counter
	success  prometheus.Observer
	failure  prometheus.Observer
	last     atomic.Pointer[respSeries]
}

type respSeries struct {
	status    int
	gs, class string
	c         prometheus.Counter
}

// route returns the series of a route, resolving them on first use. The
// cache is an immutable map behind an atomic pointer, copied on a miss:
// label sets are bounded by the config, so misses are rare.
func (m *metrics) route(dir, service, route, backend string) *routeSeries {
	k := routeKey{dir, service, route, backend}
	if rs, ok := (*m.routes.Load())[k]; ok {
		return rs
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	old := *m.routes.Load()
	if rs, ok := old[k]; ok {
		return rs
	}
	rs := &routeSeries{m: m, key: k,
		requests: m.requests.WithLabelValues(dir, service, route, backend),
		success:  m.latency.WithLabelValues(dir, service, backend, "success"),
		failure:  m.latency.WithLabelValues(dir, service, backend, "failure"),
	}
	next := make(map[routeKey]*routeSeries, len(old)+1)
	for k2, v := range old {
		next[k2] = v
	}
	next[k] = rs
	m.routes.Store(&next)
	return rs
}

// done counts a response and observes its latency.
func (rs *routeSeries) done(status int, gs, class string, seconds float64) {
	l := rs.last.Load()
	if l == nil || l.status != status || l.gs != gs || l.class != class {
		k := rs.key
		l = &respSeries{status: status, gs: gs, class: class,
			c: rs.m.responses.WithLabelValues(k.dir, k.service, k.route, k.backend, rs.m.status(status), gs, class)}
		rs.last.Store(l)
	}
	l.c.Inc()
	if class == "success" {
		rs.success.Observe(seconds)
	} else {
		rs.failure.Observe(seconds)
	}
}
