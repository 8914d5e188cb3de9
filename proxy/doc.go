// Package proxy is Causeway's data plane: a sidecar that makes real traffic
// obey the compiled model (DESIGN.md §5, issues 3 and 4).
//
// # What enters
//
// A Bootstrap (LoadBootstrap; `causeway proxy --config FILE`, YAML or JSON):
// listen addresses and the policy knobs the model does not carry. See
// testdata/bootstrap-example.yaml for a commented sample; in short:
//
//	admin: 127.0.0.1:9901          # /ready /live /metrics /config /tap; loopback only
//	inbound: {listen: 0.0.0.0:4143, appHost: 127.0.0.1}
//	outbound:
//	  httpProxy: 127.0.0.1:4140      # HTTP_PROXY target: absolute-form and CONNECT
//	  ports: [{service: shop/books, port: 80, listen: 127.0.0.1:18080}]
//	policy:                          # defaults for every upstream
//	  timeout: 10s
//	  retry: {attempts: 2, budgetRatio: 0.2, minPerSecond: 10, ttl: 10s}
//	  breaker: {consecutiveFailures: 5, openFor: 5s}
//	  maxConnsPerHost: 0             # 0 = unlimited
//	  maxIdleConnsPerHost: 256
//	services: [{service: shop/books, timeout: 2s, routes: [{match: slow, timeout: 30s}]}]
//	config: <a spec.NodeConfig>      # or configFile: node.yaml
//
// NodeConfigs enter only through (*Proxy).Apply. The bootstrap's config is the
// first; the control plane's stream will call Apply for every later one. Apply
// prepares a spec.Table, binds any listener the new config needs and then
// swaps one atomic pointer to an immutable routing state. A config that fails
// either step is refused with the reason and the old one serves on. Requests
// and connections keep the state they started with, so a swap never drops one
// in flight.
//
// Every routing decision is spec.Table.Resolve / RouteHTTP / RouteL4 and every
// authorization decision is spec.Table.Authorize: the same calls `causeway
// check routes` makes, so tool and data plane cannot disagree.
//
// # What leaves
//
// Outbound traffic goes to an endpoint's Addr:Port. An endpoint is meshed (its
// address is a Causeway sidecar's inbound listener) when it has an Identity
// or its ServicePort is 0; a meshed hop tells the far side which service port
// it wants with a preamble, the first 8 bytes of every connection:
//
//	"CWY" 0x01 | port uint16 big-endian | 2 reserved bytes (zero)
//
// It is fixed-length so the inbound side reads exactly those bytes and the
// connection stays a *net.TCPConn that Linux can splice. HTTP keeps Host as the
// client sent it. Once mTLS exists the port also travels in the TLS SNI
// (<port>.<name>.<ns>.svc.<trust-domain>) and the preamble follows inside TLS.
// UDP datagrams to a meshed endpoint carry the same 8 bytes in front.
//
// The inbound side sends to the local app at AppHost:TargetPort of the service
// port named by the preamble, speaking that port's protocol.
//
// # Protocols
//
// HTTP/1.1 (keep-alive, Upgrade/WebSocket), HTTP/2 with TLS ALPN or h2c prior
// knowledge (net/http's own HTTP/2, Go 1.24+ Protocols), gRPC (classified by
// grpc-status from trailers; streaming is passed through unbuffered), opaque
// TCP (io.Copy between *net.TCPConn: splice on Linux) and UDP (one session
// per client address, closed after an idle timeout).
//
// # Goroutines
//
// Proxy.Start starts one accept loop per listener and the admin server; the
// http.Servers own a goroutine per connection (and per HTTP/2 stream); a TCP
// flow owns two copy goroutines; a UDP session owns one reader of the
// upstream socket. Close stops the listeners, ends every goroutine it started
// and waits for them; tests check that with goleak.
package proxy
