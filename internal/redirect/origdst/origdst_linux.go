package origdst

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST from <linux/netfilter_ipv4.h>.
const soOriginalDst = 80

// Get returns where c was addressed before a REDIRECT rewrote it. For a
// connection that was not redirected it returns the local address.
func Get(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var (
		addr   netip.AddrPort
		sysErr error
	)
	err = rc.Control(func(fd uintptr) {
		// SO_ORIGINAL_DST fills a struct sockaddr_in (16 bytes). x/sys has
		// no getter for it; IPv6Mreq is a 20-byte buffer that holds it,
		// the usual way to read this option from Go.
		m, e := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, soOriginalDst)
		if e != nil {
			sysErr = e
			return
		}
		b := m.Multiaddr[:]
		port := binary.BigEndian.Uint16(b[2:4])
		addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	if sysErr != nil {
		return netip.AddrPort{}, fmt.Errorf("SO_ORIGINAL_DST of %s: %w", c.LocalAddr(), sysErr)
	}
	return addr, nil
}
