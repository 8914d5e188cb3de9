//go:build !linux

package origdst

import (
	"errors"
	"net"
	"net/netip"
)

// Get needs Linux netfilter; elsewhere a transparent listener cannot work.
func Get(c *net.TCPConn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST needs Linux")
}
