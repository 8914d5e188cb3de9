package redirect

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// soOriginalDst is SO_ORIGINAL_DST from <linux/netfilter_ipv4.h>.
const soOriginalDst = 80

// OriginalDst returns where a connection accepted after a REDIRECT was
// addressed before netfilter rewrote it: what a transparent proxy needs to
// know where to forward (the proxy does not read it yet; see doc.go).
func OriginalDst(c *net.TCPConn) (netip.AddrPort, error) {
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
		return netip.AddrPort{}, fmt.Errorf("redirect: SO_ORIGINAL_DST: %w", sysErr)
	}
	return addr, nil
}
