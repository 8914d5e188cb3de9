package redirect

import (
	"net"
	"net/netip"

	"github.com/causeway-mesh/causeway/internal/redirect/origdst"
)

// OriginalDst returns where a connection accepted after a REDIRECT was
// addressed before netfilter rewrote it: what a transparent proxy needs to
// know where to forward. The proxy calls origdst.Get directly (see that
// package for why it is separate).
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) { return origdst.Get(c) }
