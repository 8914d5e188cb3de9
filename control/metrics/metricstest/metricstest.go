// Package metricstest serves Prometheus text exposition shaped like a
// Causeway proxy's (the same series names, labels and buckets as
// proxy/metrics.go), produced by client_golang itself, for tests of the
// metrics API. It is imported only from _test.go files.
package metricstest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets are the proxy's latency buckets (proxy/metrics.go).
var Buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Proxy is a fake proxy admin server exposing /metrics.
type Proxy struct {
	Server    *httptest.Server
	responses *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// NewProxy serves a fresh registry on a loopback port until the test ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	p := &Proxy{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_responses_total", Help: "HTTP responses."},
			[]string{"direction", "service", "route", "backend", "status_code", "grpc_status", "classification"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "causeway_response_latency_seconds", Help: "Latency.", Buckets: Buckets},
			[]string{"direction", "service", "backend", "classification"}),
	}
	reg.MustRegister(p.responses, p.latency)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Server.Close)
	return p
}

// URL is the /metrics address.
func (p *Proxy) URL() string { return p.Server.URL + "/metrics" }

// Addr is the admin server's host:port.
func (p *Proxy) Addr() string { return p.Server.Listener.Addr().String() }

// Serve records n outbound responses to service via backend, each taking d;
// status >= 500 counts as a failure, as the proxy classifies them.
func (p *Proxy) Serve(service, backend string, status, n int, d time.Duration) {
	class := "success"
	if status >= 500 {
		class = "failure"
	}
	for range n {
		p.responses.WithLabelValues("outbound", service, "default", backend, strconv.Itoa(status), "", class).Inc()
		p.latency.WithLabelValues("outbound", service, backend, class).Observe(d.Seconds())
	}
}
