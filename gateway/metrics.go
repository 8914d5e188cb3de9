package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Refusal reasons, the "reason" label of causeway_gateway_refused_total.
// Each says which check a connection failed, in the order they run.
const (
	ReasonNotTLS        = "not_tls"              // the first bytes are not a TLS handshake (plaintext)
	ReasonUntrusted     = "untrusted_caller"     // caller's trust domain has no bundle here (not linked)
	ReasonHandshake     = "handshake"            // any other TLS failure: no client certificate, bad chain, timeout
	ReasonBadSNI        = "bad_sni"              // SNI missing or not <port>.<name>.<ns>.svc.<td>
	ReasonForeignTD     = "foreign_trust_domain" // SNI names a trust domain that is not the gateway's
	ReasonNoConfig      = "no_config"            // no config applied yet
	ReasonUnknownSvc    = "unknown_service"      // the config has no such service
	ReasonNotExported   = "not_exported"         // the service exists but is not exported
	ReasonUnknownPort   = "unknown_port"         // the service has no such port
	ReasonUDP           = "udp_port"             // the port is UDP, which the gateway cannot carry
	ReasonNoEndpoint    = "no_endpoint"          // no ready meshed endpoint serves the port
	ReasonDialFailed    = "dial_failed"          // the chosen endpoint did not accept the connection
	ReasonShuttingDown  = "shutting_down"        // the gateway is closing
	resultApplied       = "applied"
	resultRefusedConfig = "refused"
)

var allReasons = []string{ReasonNotTLS, ReasonUntrusted, ReasonHandshake, ReasonBadSNI, ReasonForeignTD,
	ReasonNoConfig, ReasonUnknownSvc, ReasonNotExported, ReasonUnknownPort, ReasonUDP, ReasonNoEndpoint,
	ReasonDialFailed, ReasonShuttingDown}

// metrics live on the gateway's own registry, so two gateways in one
// process (tests) or a gateway beside a proxy never collide.
type metrics struct {
	reg       *prometheus.Registry
	refused   *prometheus.CounterVec // reason
	forwarded *prometheus.CounterVec // service ("ns/name:port")
	active    prometheus.Gauge
	bytes     *prometheus.CounterVec // service, direction (in: caller to destination)
	configs   *prometheus.CounterVec // result
	revoked   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_gateway_refused_total",
		Help: "Connections the east-west gateway refused, by reason."}, []string{"reason"})
	m.forwarded = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_gateway_connections_total",
		Help: "Connections the east-west gateway forwarded to a destination, by exported service port."}, []string{"service"})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{Name: "causeway_gateway_active_connections",
		Help: "Connections being relayed now."})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_gateway_bytes_total",
		Help: "Bytes relayed once a connection ended, by service port and direction (in: caller to destination)."}, []string{"service", "direction"})
	m.configs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "causeway_gateway_config_updates_total",
		Help: "Configs offered to the gateway, by result (applied, refused)."}, []string{"result"})
	m.revoked = prometheus.NewCounter(prometheus.CounterOpts{Name: "causeway_gateway_revoked_connections_total",
		Help: "Relayed connections closed because their caller's trust domain lost its bundle (unlinked)."})
	m.reg.MustRegister(m.refused, m.forwarded, m.active, m.bytes, m.configs, m.revoked,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every reason is present from the start, so a dashboard's rate() has a
	// series before the first refusal.
	for _, r := range allReasons {
		m.refused.WithLabelValues(r)
	}
	m.configs.WithLabelValues(resultApplied)
	m.configs.WithLabelValues(resultRefusedConfig)
	return m
}
