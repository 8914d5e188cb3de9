package inject

import (
	"cmp"
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Names of what the injector adds or reads. Every injected object carries
// the "causeway-" prefix, so a pod that already has one is recognisable.
const (
	// Label or annotation, on a namespace or a pod: "enabled" opts in,
	// "disabled" (on the pod) opts out.
	AnnotationInject = "causeway.dev/inject"
	// Set on every injected pod; its presence makes injection a no-op.
	AnnotationInjected = "causeway.dev/injected"
	// The proxy image that was injected.
	AnnotationProxyImage = "causeway.dev/proxy-image"
	// The proxy's bootstrap (JSON), read by the sidecar through a downward
	// API volume: no ConfigMap to create in every namespace.
	AnnotationBootstrap = "causeway.dev/proxy-bootstrap"
	// "ns/name,ns/name": the Services the pod backs (--service flags of the
	// proxy). Set by the user it wins; else the injector fills it with the
	// Services whose selector matched the pod at admission.
	AnnotationServices = "causeway.dev/services"
	// Comma-separated ports that reach the app without the proxy (an
	// unmeshed Prometheus scraping a metrics port, say).
	AnnotationSkipInboundPorts = "causeway.dev/skip-inbound-ports"

	// AnnotationOutbound, on a pod, chooses how its app reaches the proxy:
	// ValueHTTPProxy (the default: HTTP_PROXY names the forward proxy) or
	// ValueTransparent (the init step also REDIRECTs the pod's outbound TCP
	// to the proxy's transparent listener, no HTTP_PROXY; the inbound
	// listener also passes unmeshed clients through to the app in
	// permissive mode).
	AnnotationOutbound = "causeway.dev/outbound"

	ValueEnabled     = "enabled"
	ValueDisabled    = "disabled"
	ValueHTTPProxy   = "http-proxy"
	ValueTransparent = "transparent"

	ProxyContainer    = "causeway-proxy"
	InitContainer     = "causeway-init"
	BootstrapVolume   = "causeway-bootstrap"
	SPIFFEVolume      = "causeway-spiffe"
	TokenVolume       = "causeway-token"
	tokenMountPath    = "/var/run/secrets/causeway.dev/serviceaccount"
	tokenFile         = "token"
	bootstrapDir      = "/var/run/causeway/bootstrap"
	bootstrapFile     = "bootstrap.json"
	spiffeMountPath   = "/spiffe-workload-api"
	defaultNodeFormat = "$(POD_NAME).$(POD_NAMESPACE)"
)

// Ports of the injected proxy. The inbound port is where the init step's
// REDIRECT sends the pod's inbound TCP; the HTTP proxy port is what the app
// containers' HTTP_PROXY names.
const (
	DefaultInboundPort   = 4143
	DefaultHTTPProxyPort = 4140
	DefaultAdminPort     = 9901
	// DefaultTransparentPort is where, with causeway.dev/outbound:
	// transparent, the OUTPUT REDIRECT sends the app's connections.
	DefaultTransparentPort = 15001
	DefaultProxyUID        = 2102
)

// Config is what every injected pod gets. The zero value of a field takes
// the default named on it.
type Config struct {
	// Image runs both the proxy and the init step (`causeway proxy`,
	// `causeway init-redirect`; the image must hold iptables). Required.
	Image      string
	PullPolicy corev1.PullPolicy
	// ControlAddr is the control plane's gRPC address as pods reach it,
	// e.g. causeway-control-plane.causeway-system.svc:15010. Required.
	ControlAddr string
	// ControlID is the control plane's SPIFFE ID, which the proxy checks.
	// Required.
	ControlID string
	// SPIFFE is where the proxy's Workload API socket comes from.
	SPIFFE SPIFFESource
	// Ports; 0 = DefaultInboundPort, DefaultHTTPProxyPort, DefaultAdminPort,
	// DefaultTransparentPort.
	InboundPort, HTTPProxyPort, AdminPort, TransparentPort int32
	// ProxyUID runs the proxy; the init step never redirects it. 0 =
	// DefaultProxyUID (0 itself is root and not allowed).
	ProxyUID int64
	// Services resolves the Services a pod backs when its annotation does
	// not say; nil leaves them to the annotation.
	Services ServiceResolver
	// Namespaces reads a namespace's labels, to leave pods alone where Pod
	// Security would reject the init container; nil skips that check.
	Namespaces NamespaceReader
}

// NamespaceReader returns a namespace's labels.
type NamespaceReader interface {
	NamespaceLabels(ctx context.Context, namespace string) (map[string]string, error)
}

// SPIFFESource says how the Workload API socket reaches the pod. The
// default is SPIRE's CSI driver (csi.spiffe.io), which mounts the node
// agent's socket directory into the pod: an inline CSI volume is allowed
// by the restricted Pod Security level, a hostPath is not.
type SPIFFESource struct {
	// CSIDriver names the CSI driver; "" = csi.spiffe.io unless HostPath is set.
	CSIDriver string
	// HostPath mounts this node directory instead (a SPIRE agent's socket
	// directory, e.g. /run/spire/agent-sockets).
	HostPath string
	// SocketName is the socket's file name in that directory; "" =
	// spire-agent.sock, the name the SPIRE agent uses there.
	SocketName string
	// TokenAudience, if set, gives the proxy a projected ServiceAccount
	// token for this audience (volume causeway-token, proxy container
	// only) and `--spiffe-token-file`: what Causeway's node agent
	// (`identity serve --attest tokenreview`) needs to tell pods apart on a
	// socket that every pod of the node shares. Empty for a SPIRE agent,
	// which attests with its own workload attestors.
	TokenAudience string
	// TokenExpirationSeconds of the projected token; 0 =
	// DefaultTokenExpirationSeconds. The kubelet renews it at 80% of this.
	TokenExpirationSeconds int64
}

// DefaultTokenExpirationSeconds is the projected token's lifetime: an hour,
// as the kubelet's own ServiceAccount tokens; the apiserver refuses less than
// ten minutes.
const DefaultTokenExpirationSeconds = 3600

// ServiceResolver names the Services (ns/name) whose selectors match a pod's
// labels in its namespace.
type ServiceResolver interface {
	PodServices(ctx context.Context, namespace string, labels map[string]string) ([]string, error)
}

func (c Config) withDefaults() Config {
	c.InboundPort = cmp.Or(c.InboundPort, DefaultInboundPort)
	c.HTTPProxyPort = cmp.Or(c.HTTPProxyPort, DefaultHTTPProxyPort)
	c.AdminPort = cmp.Or(c.AdminPort, DefaultAdminPort)
	c.TransparentPort = cmp.Or(c.TransparentPort, DefaultTransparentPort)
	c.ProxyUID = cmp.Or(c.ProxyUID, DefaultProxyUID)
	c.PullPolicy = cmp.Or(c.PullPolicy, corev1.PullIfNotPresent)
	if c.SPIFFE.HostPath == "" {
		c.SPIFFE.CSIDriver = cmp.Or(c.SPIFFE.CSIDriver, "csi.spiffe.io")
	}
	c.SPIFFE.SocketName = cmp.Or(c.SPIFFE.SocketName, "spire-agent.sock")
	if c.SPIFFE.TokenAudience != "" {
		c.SPIFFE.TokenExpirationSeconds = cmp.Or(c.SPIFFE.TokenExpirationSeconds, DefaultTokenExpirationSeconds)
	}
	return c
}

// Validate names the first missing or conflicting field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Image == "":
		return fmt.Errorf("inject: image is required")
	case c.ControlAddr == "":
		return fmt.Errorf("inject: control address is required")
	case !strings.HasPrefix(c.ControlID, "spiffe://"):
		return fmt.Errorf("inject: control ID %q: want a spiffe:// ID", c.ControlID)
	case c.ProxyUID < 0:
		return fmt.Errorf("inject: proxy uid %d: must be a non-root uid", c.ProxyUID)
	case c.SPIFFE.HostPath != "" && c.SPIFFE.CSIDriver != "":
		return fmt.Errorf("inject: SPIFFE socket: CSI driver %q and host path %q are exclusive", c.SPIFFE.CSIDriver, c.SPIFFE.HostPath)
	case strings.Contains(c.SPIFFE.SocketName, "/"):
		return fmt.Errorf("inject: SPIFFE socket name %q: a file name, not a path", c.SPIFFE.SocketName)
	case strings.TrimSpace(c.SPIFFE.TokenAudience) != c.SPIFFE.TokenAudience || strings.Contains(c.SPIFFE.TokenAudience, ","):
		return fmt.Errorf("inject: SPIFFE token audience %q: one audience, without spaces or commas", c.SPIFFE.TokenAudience)
	case c.SPIFFE.TokenAudience != "" && c.SPIFFE.TokenExpirationSeconds < 600:
		return fmt.Errorf("inject: SPIFFE token expiration %ds: the apiserver's minimum is 600", c.SPIFFE.TokenExpirationSeconds)
	}
	ports := map[int32]string{}
	for _, p := range []struct {
		name string
		port int32
	}{{"inbound", c.InboundPort}, {"httpProxy", c.HTTPProxyPort}, {"admin", c.AdminPort}, {"transparent", c.TransparentPort}} {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("inject: %s port %d out of range", p.name, p.port)
		}
		if other, dup := ports[p.port]; dup {
			return fmt.Errorf("inject: %s port %d is also the %s port", p.name, p.port, other)
		}
		ports[p.port] = p.name
	}
	return nil
}
