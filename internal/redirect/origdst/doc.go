// Package origdst reads SO_ORIGINAL_DST, the address a connection accepted
// after an iptables REDIRECT was sent to before netfilter rewrote it.
//
// It is its own package, not part of internal/redirect, so the proxy can
// import it while internal/redirect's tests import the proxy (a test of
// package redirect importing proxy would otherwise be an import cycle).
//
// What enters: an accepted *net.TCPConn. What leaves: its original IPv4
// destination. No goroutines: Get runs one getsockopt on the caller's.
package origdst
