// Package redirect builds and applies the netfilter rules that send a pod's
// TCP traffic through its Causeway sidecar (issue 5's init step; run by the
// hidden `causeway init-redirect` in the injected init container).
//
// # What enters
//
// Rules: the proxy's inbound port (TCP arriving from the network is
// REDIRECTed there), optionally its outbound port (TCP the pod opens), the
// proxy's uid (never redirected, or its own forwarding would loop), and the
// ports, source networks and destination networks that bypass the proxy.
//
// # What leaves
//
// Rules.Render: iptables-restore input for the nat table (golden-tested),
// with Causeway's own chains
//
//	PREROUTING -p tcp -> CAUSEWAY_INBOUND:  RETURN the proxy's port, skipped sources, skipped ports
//	                                        -> CAUSEWAY_IN_REDIRECT: REDIRECT --to-ports <inbound>
//	OUTPUT -p tcp -> CAUSEWAY_OUTPUT:       RETURN --uid-owner <proxy>, -o lo, skipped CIDRs/ports
//	                                        -> CAUSEWAY_OUT_REDIRECT: REDIRECT --to-ports <outbound>
//
// Runner.Apply reads `iptables-save -t nat`, leaves out the jumps already
// installed and feeds the rest to `iptables-restore --noflush`; declaring the
// CAUSEWAY_* chains flushes them, so applying again replaces Causeway's rules
// and leaves everyone else's (a CNI's) alone. OriginalDst reads
// SO_ORIGINAL_DST, the address a redirected connection was sent to.
//
// # What the proxy does with redirected traffic
//
// Inbound: mesh callers dial the pod's address and the app's port with TLS
// (or the plaintext preamble) and the preamble names the service port, so
// the inbound listener needs no original destination for them. A
// plaintext client outside the mesh is closed, unless the proxy runs with
// inbound.transparent: then OriginalDst gives the app port it dialled and
// permissive mode forwards it there (strict mode still closes it). Either
// way the injector skips the node's address (kubelet probes) and ports
// named in the causeway.dev/skip-inbound-ports annotation.
//
// Outbound: with the injector's causeway.dev/outbound: transparent, the
// init step also installs the OUTPUT redirect to the proxy's
// outbound.transparent listener, which maps the original destination to a
// service port or passes it through (proxy/doc.go, Transparent mode). By
// default apps still reach the proxy through HTTP_PROXY and its fixed ports.
//
// OriginalDst lives in the subpackage origdst so the proxy can import it
// without importing this package (whose tests import the proxy).
// TestNetnsTransparent runs two real sidecars with mTLS behind these rules.
//
// IPv4 only (iptables, not ip6tables); IPv6 prefixes are refused by Validate.
//
// # Goroutines
//
// None. Apply runs two commands on the caller's goroutine.
package redirect
