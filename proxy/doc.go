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
//	workloadAPI: unix:///run/spire/agent.sock   # SVIDs + bundles: mTLS on (optional)
//	inbound: {listen: 0.0.0.0:4143, appHost: 127.0.0.1, transparent: false}
//	outbound:
//	  httpProxy: 127.0.0.1:4140      # HTTP_PROXY target: absolute-form and CONNECT
//	  transparent: 127.0.0.1:15001   # iptables-redirected app connections (optional)
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
// It is fixed-length so the inbound side reads exactly those bytes and a
// plaintext connection stays a *net.TCPConn that Linux can splice. HTTP keeps
// Host as the client sent it. With mTLS (Options.SVIDs and Options.Bundles)
// a meshed endpoint with an Identity is dialled over TLS, the SNI naming the
// port as <port>.<name>.<ns>.svc.<trust-domain>, and the preamble is the first
// thing inside TLS. Inside the tunnel the protocol is the service port's
// (HTTP/1.1, or h2c for http2/grpc ports), fixed by the preamble rather than
// negotiated by ALPN. UDP datagrams to a meshed endpoint carry the same 8
// bytes in front (UDP is not encrypted: there is no DTLS here).
//
// The inbound side sends to the local app at AppHost:TargetPort of the service
// port named by the preamble, speaking that port's protocol. It accepts, on
// one listener, TLS (first byte 0x16) or the plaintext preamble; anything else
// is closed (unless inbound.transparent: see Transparent mode). Plaintext is
// refused when mTLS is on and the mode is strict.
// Unmeshed endpoints get the bytes the client sent, no preamble.
//
// An endpoint with Gateway set is another cluster's east-west gateway
// (DESIGN.md §7, gateway/): the proxy opens mTLS to it, authorizing exactly
// Gateway, with the SNI built from the endpoint's Remote service (as its
// own cluster names it) and the gateway's trust domain; inside that, mTLS
// end to end to the destination sidecar, authorizing one of the cluster's
// Identities (any member of the gateway's trust domain when it has none),
// same SNI; then the preamble (gatewayhop.go). The gateway relays the
// inner TLS records, so the destination authorizes this proxy's own SVID.
// Such connections are pooled and balanced like any other endpoint's.
// Without mTLS (no SVID source) dialling one fails with that reason. UDP
// is not carried: a UDP port leaves gateway endpoints out of its balancer
// (there is no DTLS), so a UDP upstream reached only through gateways has
// no endpoint.
//
// # Transparent mode
//
// With the pod's TCP redirected by iptables (internal/redirect, the
// injector's causeway.dev/outbound: transparent), the proxy reads each
// redirected connection's original destination with SO_ORIGINAL_DST
// (internal/redirect/origdst).
//
// Outbound (outbound.transparent): the app dialled a Service's ClusterIP
// at a service port (the pod's own netns has no kube-proxy rules, so the
// redirect sees the ClusterIP), or an endpoint's address:port directly.
// Apply builds a map from every upstream's ClusterIPs at its service ports,
// and every endpoint address:port of the config's clusters (Addr:Port with
// its ServicePort; a sidecar endpoint, ServicePort 0, at each port's target
// port), to the upstream service port it serves; a split's leaf maps to the
// upstream that routes to it, so the split still decides. A mapped connection is served
// exactly as a fixed port for that service port (dispatchFixed: the HTTP/1.1
// fast path, the HTTP/2 server for h2c and gRPC, L4 for TCP). Anything else is passed
// through as opaque TCP to where the app sent it. A connection that was not
// redirected (original destination = the listener) is closed rather than
// looped.
//
// Inbound (inbound.transparent): a connection that starts with neither
// TLS (with mTLS on) nor the preamble is an unmeshed client the PREROUTING
// REDIRECT sent here. In permissive mode it is forwarded, as opaque TCP
// with the bytes already read, to AppHost at the port it dialled; in strict
// mode it is closed. With mTLS on, an unmeshed client speaking TLS to the
// app starts with 0x16 and meets the mesh's TLS server, which refuses it:
// such ports must be skipped (causeway.dev/skip-inbound-ports).
//
// Both count causeway_transparent_connections_total{direction, result}:
// routed, passthrough, refused, error.
//
// # Routing
//
// Fixed ports and the forward proxy resolve the service (Table.Resolve on the
// Host for the forward proxy), then Table.RouteHTTP (HTTPRouteGroup matches,
// first match wins, else the root's default split) or Table.RouteL4
// (TCPRoute/UDPRoute ports). A split's backend is chosen by weighted random
// choice (see pickWeighted for why not smooth weighted round-robin), then an
// endpoint by proxy/balance (P2C over peak-EWMA with an in-flight penalty,
// outlier ejection and probing back).
//
// Failover: endpoints carry a priority (spec.Endpoint.Priority; a Service
// exported here and by linked clusters has their gateways at 1, behind its
// own at 0), and the balancer uses only the lowest level with an available
// endpoint. A level with another behind it is given up fast: an endpoint
// there is ejected after 2 failures (Policy.Outlier.FailoverFailures), or
// at once when a connection to it is refused or times out (cluster.go's
// dial), so the retry of the request that saw it fail goes to the next
// level; it returns after its ejection (Policy.Outlier.BaseEjectionTime,
// default 30 s) with a successful probe. While a level stands behind the
// one serving, the cluster's circuit breaker is not consulted (priority.go):
// it guards the last level. causeway_upstream_picks_total{cluster,
// priority} counts which level served.
//
// # Resilience
//
// Per cluster port: a circuit breaker (proxy/resilience; open answers 503
// with a Causeway-Error header) and a connection pool (MaxIdleConnsPerHost,
// MaxConnsPerHost). Per upstream service: the timeout, which bounds the wait
// for response headers (504) and not a streaming body, so gRPC streams and
// downloads are not cut; and retries of failed attempts (connect errors, 5xx,
// gRPC UNAVAILABLE) for idempotent methods without a body, or any request
// that carries "Causeway-Retryable: true" (body up to 64 KiB, buffered; the
// header is stripped), each retry withdrawn from the upstream's retry budget.
// A client hanging up is never counted against the backend.
//
// # Authorization
//
// Inbound, every request or flow is judged by Table.Authorize with the
// caller's verified SPIFFE ID (zero without mTLS, which strict mode denies):
// denied HTTP gets 403 with the reason in the body, a denied TCP flow is
// closed before the app is dialled. The app gets X-Forwarded-Client-Cert in
// Envoy's form (By=<our ID>;Hash=<sha256 of the caller's leaf>;URI=<caller>),
// and any such header the caller sent is removed first.
//
// # Observability
//
// The admin server (loopback only) serves /live, /ready (once a config is in
// force), /metrics (the proxy's own Prometheus registry: causeway_requests_total,
// causeway_responses_total by status, grpc_status and classification,
// causeway_response_latency_seconds, causeway_retries_total,
// causeway_retry_budget_exhausted_total, causeway_circuit_state,
// causeway_tcp_*, causeway_udp_*, causeway_inbound_authorization_total,
// causeway_inbound_peer_response_latency_seconds (callers of another trust
// domain: a linked cluster's, whose own proxies this control plane does not
// scrape),
// causeway_transparent_connections_total,
// causeway_config_updates_total), /config (the NodeConfig in force with its
// version) and /tap (one JSON line per request, and per TCP flow when it
// ends or is refused, while someone listens; the request path pays an
// atomic load when nobody does, and never logs).
//
// # Protocols
//
// HTTP/1.1 connections to a fixed port or an inbound port whose protocol is
// plain http start on the fast path (h1server.go, h1forward.go, h1parse.go):
// one goroutine per connection reads each request head into a reused
// buffer, routes it with the same Table calls, and writes it upstream from
// the parsed bytes through the h1 client's pool; the response head is
// parsed the same way and the body copied (Content-Length, chunked verbatim
// with its trailers, or read-to-close re-chunked), with the same breaker,
// balancer, retries, route timeout (504), metrics and tap. It takes only
// the plain shape of a request: origin-form HTTP/1.1 with Content-Length or
// no body, no Upgrade, Expect, Causeway-Retryable or escaped path, a head
// that fits 8 KiB, routed to a cluster on the h1 client, and allowed
// (inbound). At the first request it does not take, the connection, with
// the bytes read ahead, goes to the net/http server below for the rest of
// its life, so h2c prior knowledge, chunked uploads, 100-continue, 400 and
// 431, denials and routing errors behave exactly as there. Per request it
// allocates about one string (the path) and arms no timer but the
// upstream's header deadline. One difference: it does not watch the client
// while a request waits for the upstream's answer, so a client that hangs
// up then is noticed when the answer is written (net/http's path noticed
// at once and ended the attempt); the attempt counts as the upstream
// answered, never against it. Plaintext TCP connections of the fast path
// and the h1 client do their reads and writes as raw system calls through
// syscall.RawConn (rawio.go: why), waiting in the netpoller like net.Conn.
//
// Otherwise requests are forwarded by a lean forwarder (forward.go: the server's
// request is reused as the outbound one). To plain HTTP/1.1 ports it sends
// them with its own goroutine-free HTTP/1.1 client (h1client.go: request
// written and response headers read on the handler's goroutine, the route
// timeout a socket deadline); HTTP/2 and gRPC ports, outbound and to the
// local app, with their own h2c client (h2client.go, h2stream.go:
// x/net/http2's Framer and hpack, every stream to an endpoint multiplexed
// on one connection, no goroutine per request unless it has a body, the
// route timeout a timer on the header wait); pools capped by
// maxConnsPerHost use net/http's Transport; Upgrade requests go through
// httputil.ReverseProxy, which handles the switch to a raw tunnel. The
// h2c client's connections batch their writes (h2conn.go): a write
// queues the bytes and one short-lived flusher goroutine hands everything
// queued to the kernel in one call, so the frames of many streams share a
// system call.
//
// Connections to http2 and grpc ports (fixed, transparent, inbound) that
// open with the HTTP/2 preface are served by the proxy's own HTTP/2 server
// (h2server.go, h2srvstream.go; Framer and hpack again, a goroutine per
// stream running the same serveFixed / serveInbound handlers, frames
// written by the handler itself into a batched connection, a small answer
// sent as HEADERS and one DATA frame with END_STREAM). Any other start
// (HTTP/1.1 on such a port) goes to the net/http server with the bytes
// read.
//
// Protocols: HTTP/1.1 (keep-alive, Upgrade/WebSocket), HTTP/2 with h2c prior knowledge
// from the app (apps talk
// plaintext to their loopback sidecar), gRPC (classified by grpc-status from
// trailers; streams pass through unbuffered), opaque TCP (io.Copy between
// *net.TCPConn: splice on Linux) and UDP (one session per client address,
// closed after an idle minute).
//
// # Goroutines
//
// Proxy.Start starts one accept loop per listener (the transparent one
// reads SO_ORIGINAL_DST on it, a non-blocking getsockopt) and the admin
// server; a passed-through connection owns one goroutine plus relay's; a
// fast-path connection is served on its own goroutine (a fixed port's, or
// the inbound goroutine that read its preamble) until it closes or moves to
// net/http; the http.Servers own a goroutine per connection; an HTTP/2
// connection of the proxy's own server is read on the goroutine that
// accepted it (or read its preamble), with a goroutine per stream; an inbound connection is read (TLS handshake, preamble) on its own goroutine
// so a slow caller cannot stall the accept loop; a TCP flow owns two copy
// goroutines; a UDP relay owns its socket's reader and one reader per
// session's upstream socket; an h2c client connection owns one reader
// goroutine, a request body being sent one more, and a batched
// connection a flusher while it has bytes queued. Apply runs on the caller's goroutine, serialised
// by a mutex; requests never take it (they read one atomic pointer). Close
// stops the listeners, ends every L4 flow, stops fast-path connections at
// their next request boundary, gives HTTP requests 5 s, and waits
// for every goroutine it started; the tests check that with goleak.
package proxy
