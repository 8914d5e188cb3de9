package proxy

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/spec"
)

// Bootstrap is what `causeway proxy --config FILE` reads: where to listen and
// the policy knobs the model does not carry. Routing and authorization come
// only from the NodeConfig (Config, or later the control plane's stream).
type Bootstrap struct {
	// Admin is the admin server's address; it must be a loopback address.
	Admin string `json:"admin,omitempty"`
	// WorkloadAPI is the SPIFFE Workload API socket ("unix:///run/spire/
	// agent.sock") the proxy gets its SVID and trust bundles from; set, it
	// turns on mTLS between proxies. Empty: a plaintext mesh.
	WorkloadAPI string         `json:"workloadAPI,omitempty"`
	Inbound     InboundConfig  `json:"inbound,omitzero"`
	Outbound    OutboundConfig `json:"outbound,omitzero"`
	// Policy holds the defaults for every upstream service.
	Policy Policy `json:"policy,omitzero"`
	// Services override Policy per upstream service.
	Services []ServicePolicy `json:"services,omitempty"`
	// Config is the NodeConfig to start with; ConfigFile names a JSON/YAML
	// file holding one instead (relative to the bootstrap file).
	Config     *spec.NodeConfig `json:"config,omitempty"`
	ConfigFile string           `json:"configFile,omitempty"`
}

// InboundConfig is the mesh-facing side.
type InboundConfig struct {
	// Listen accepts mesh traffic; "" disables the inbound side.
	Listen string `json:"listen,omitempty"`
	// AppHost is where the local app listens, on each port's TargetPort.
	AppHost string `json:"appHost,omitempty"`
	// Transparent says the listener receives iptables-redirected traffic
	// (internal/redirect): a connection that is neither TLS nor the
	// preamble is an unmeshed client, sent in permissive mode to AppHost
	// at the port it originally dialled (SO_ORIGINAL_DST), closed in strict.
	Transparent bool `json:"transparent,omitempty"`
}

// OutboundConfig is the app-facing side.
type OutboundConfig struct {
	// HTTPProxy is the HTTP forward proxy's address; "" disables it.
	HTTPProxy string      `json:"httpProxy,omitempty"`
	Ports     []FixedPort `json:"ports,omitempty"`
	// Transparent is the address of the listener that accepts the app's
	// connections redirected by iptables (nat OUTPUT REDIRECT); each is
	// served as the fixed port of the service port its original
	// destination belongs to, or passed through as opaque TCP. "" disables it.
	Transparent string `json:"transparent,omitempty"`
}

// FixedPort binds Listen to one upstream service port.
type FixedPort struct {
	// Service is "ns/name" (or "cluster/ns/name").
	Service string `json:"service"`
	Port    int32  `json:"port"`
	Listen  string `json:"listen"`
}

// Key parses Service.
func (f FixedPort) Key() (spec.Key, error) { return ParseKey(f.Service) }

// Policy is how requests to an upstream are treated. Zero fields take the
// defaults of DefaultPolicy.
type Policy struct {
	Timeout             Duration      `json:"timeout,omitzero"`
	Retry               RetryPolicy   `json:"retry,omitzero"`
	Breaker             BreakerPolicy `json:"breaker,omitzero"`
	Outlier             OutlierPolicy `json:"outlier,omitzero"`
	MaxConnsPerHost     int           `json:"maxConnsPerHost,omitempty"`
	MaxIdleConnsPerHost int           `json:"maxIdleConnsPerHost,omitempty"`
}

// RetryPolicy bounds retries. Attempts is the number of extra attempts; a
// negative value disables retries.
type RetryPolicy struct {
	Attempts     int      `json:"attempts,omitempty"`
	BudgetRatio  float64  `json:"budgetRatio,omitempty"`
	MinPerSecond int      `json:"minPerSecond,omitempty"`
	TTL          Duration `json:"ttl,omitzero"`
}

// BreakerPolicy opens an upstream cluster's circuit after ConsecutiveFailures
// and lets one probe through after OpenFor. A negative ConsecutiveFailures
// disables the breaker.
type BreakerPolicy struct {
	ConsecutiveFailures int      `json:"consecutiveFailures,omitempty"`
	OpenFor             Duration `json:"openFor,omitzero"`
}

// OutlierPolicy tunes outlier detection per endpoint (proxy/balance,
// Envoy's and Istio's outlierDetection); a zero field takes that package's
// default (5 failures, 30 s doubling to 300 s; 2 failures where a lower
// priority can take the traffic). A negative ConsecutiveFailures disables
// ejection.
type OutlierPolicy struct {
	ConsecutiveFailures int      `json:"consecutiveFailures,omitempty"`
	FailoverFailures    int      `json:"failoverFailures,omitempty"`
	BaseEjectionTime    Duration `json:"baseEjectionTime,omitzero"`
	MaxEjectionTime     Duration `json:"maxEjectionTime,omitzero"`
}

// ServicePolicy overrides Policy for one upstream service, and the timeout
// for single route matches (by HTTPRouteGroup match name).
type ServicePolicy struct {
	Service string `json:"service"`
	Policy
	Routes []RoutePolicy `json:"routes,omitempty"`
}

// RoutePolicy sets the timeout of requests that matched Match.
type RoutePolicy struct {
	Match   string   `json:"match"`
	Timeout Duration `json:"timeout"`
}

// DefaultPolicy is what an unset Policy field means.
var DefaultPolicy = Policy{
	Timeout:             Duration(10 * time.Second),
	Retry:               RetryPolicy{Attempts: 2, BudgetRatio: 0.2, MinPerSecond: 10, TTL: Duration(10 * time.Second)},
	Breaker:             BreakerPolicy{ConsecutiveFailures: 5, OpenFor: Duration(5 * time.Second)},
	MaxIdleConnsPerHost: 256,
}

// merge fills zero fields of p from d.
func (p Policy) merge(d Policy) Policy {
	if p.Timeout == 0 {
		p.Timeout = d.Timeout
	}
	if p.Retry.Attempts == 0 {
		p.Retry.Attempts = d.Retry.Attempts
	}
	if p.Retry.BudgetRatio == 0 {
		p.Retry.BudgetRatio = d.Retry.BudgetRatio
	}
	if p.Retry.MinPerSecond == 0 {
		p.Retry.MinPerSecond = d.Retry.MinPerSecond
	}
	if p.Retry.TTL == 0 {
		p.Retry.TTL = d.Retry.TTL
	}
	if p.Breaker.ConsecutiveFailures == 0 {
		p.Breaker.ConsecutiveFailures = d.Breaker.ConsecutiveFailures
	}
	if p.Breaker.OpenFor == 0 {
		p.Breaker.OpenFor = d.Breaker.OpenFor
	}
	if p.Outlier.ConsecutiveFailures == 0 {
		p.Outlier.ConsecutiveFailures = d.Outlier.ConsecutiveFailures
	}
	if p.Outlier.FailoverFailures == 0 {
		p.Outlier.FailoverFailures = d.Outlier.FailoverFailures
	}
	if p.Outlier.BaseEjectionTime == 0 {
		p.Outlier.BaseEjectionTime = d.Outlier.BaseEjectionTime
	}
	if p.Outlier.MaxEjectionTime == 0 {
		p.Outlier.MaxEjectionTime = d.Outlier.MaxEjectionTime
	}
	if p.MaxConnsPerHost == 0 {
		p.MaxConnsPerHost = d.MaxConnsPerHost
	}
	if p.MaxIdleConnsPerHost == 0 {
		p.MaxIdleConnsPerHost = d.MaxIdleConnsPerHost
	}
	return p
}

// Duration is a time.Duration written as "2s", "150ms" in files.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string ("2s") or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration: want a string like \"2s\" or seconds, got %s", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// ParseKey reads "ns/name" or "cluster/ns/name".
func ParseKey(s string) (spec.Key, error) {
	parts := strings.Split(s, "/")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return spec.Key{Namespace: parts[0], Name: parts[1]}, nil
	case len(parts) == 3 && parts[1] != "" && parts[2] != "":
		return spec.Key{Cluster: parts[0], Namespace: parts[1], Name: parts[2]}, nil
	}
	return spec.Key{}, fmt.Errorf("service %q: want ns/name or cluster/ns/name", s)
}

// LoadBootstrap reads a bootstrap file (YAML or JSON) and the NodeConfig it
// names, and validates both.
func LoadBootstrap(file string) (*Bootstrap, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var b Bootstrap
	if err := yaml.UnmarshalStrict(data, &b); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if b.ConfigFile != "" {
		if b.Config != nil {
			return nil, fmt.Errorf("%s: config and configFile are both set", file)
		}
		cf := b.ConfigFile
		if !strings.HasPrefix(cf, "/") {
			cf = dirOf(file) + cf
		}
		c, err := LoadNodeConfig(cf)
		if err != nil {
			return nil, fmt.Errorf("%s: configFile: %w", file, err)
		}
		b.Config = c
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &b, nil
}

// LoadNodeConfig reads a NodeConfig from a JSON or YAML file.
func LoadNodeConfig(file string) (*spec.NodeConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var c spec.NodeConfig
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &c, nil
}

func dirOf(file string) string {
	if i := strings.LastIndexByte(file, '/'); i >= 0 {
		return file[:i+1]
	}
	return ""
}

// Validate checks addresses and references; it names the field at fault.
func (b *Bootstrap) Validate() error {
	if b.Admin != "" {
		host, _, err := net.SplitHostPort(b.Admin)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("admin: %q is not a loopback address", b.Admin)
		}
	}
	for _, a := range []struct{ field, addr string }{{"inbound.listen", b.Inbound.Listen}, {"outbound.httpProxy", b.Outbound.HTTPProxy}, {"outbound.transparent", b.Outbound.Transparent}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			return fmt.Errorf("%s: %w", a.field, err)
		}
	}
	seen := map[string]int{}
	for i, fp := range b.Outbound.Ports {
		f := fmt.Sprintf("outbound.ports[%d]", i)
		if _, err := fp.Key(); err != nil {
			return fmt.Errorf("%s.service: %w", f, err)
		}
		if fp.Port <= 0 || fp.Port > 65535 {
			return fmt.Errorf("%s.port: %d out of range", f, fp.Port)
		}
		if _, _, err := net.SplitHostPort(fp.Listen); err != nil {
			return fmt.Errorf("%s.listen: %w", f, err)
		}
		if _, port, _ := net.SplitHostPort(fp.Listen); port == "0" {
			continue // the kernel picks; never a duplicate
		}
		if j, dup := seen[fp.Listen]; dup {
			return fmt.Errorf("%s.listen: %s already used by outbound.ports[%d]", f, fp.Listen, j)
		}
		seen[fp.Listen] = i
	}
	for i, sp := range b.Services {
		if _, err := ParseKey(sp.Service); err != nil {
			return fmt.Errorf("services[%d].service: %w", i, err)
		}
	}
	return nil
}
