// Package loopback hands out loopback ports for the processes that tests,
// benchmarks and `causeway up` start (apiservers, proxies, gateways, HAProxy,
// NGINX) and that must be told a port before they bind it.
package loopback

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// FreePorts returns n distinct ports on 127.0.0.1 that are free now, for TCP
// and UDP both. They are chosen below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range): a port the kernel hands out for bind(":0")
// or an outgoing connection comes from that range, so between this call and
// the child's bind only another explicit chooser could take the port, not
// the hundreds of connections parallel tests open on loopback. When the
// range leaves too little room below it, ports come from the kernel as a
// fallback. Each port handed out is also reserved for the calling
// process's lifetime (a lock file, see reserve), so two callers in
// different processes never get the same one while the first one's child
// has not bound it yet. A process started afterwards may still lose a port
// to something that binds without asking FreePorts, which is why callers
// wait for their children to come up.
func FreePorts(n int) ([]int, error) {
	lo, hi := belowEphemeral()
	if hi-lo < 1000 {
		return kernelPorts(n)
	}
	ports := make([]int, 0, n)
	seen := map[int]bool{}
	for tries := 0; len(ports) < n; tries++ {
		if tries > 200*n {
			return nil, errors.New("loopback: no free port below the ephemeral range")
		}
		p := lo + rand.IntN(hi-lo)
		// Reservations are skipped after half the tries: a process that
		// has handed out most of the range (a very long 'causeway up')
		// still gets a port that is free now, as before reservations.
		if seen[p] || !free(p) || (tries < 100*n && !reserve(p)) {
			continue
		}
		seen[p] = true
		ports = append(ports, p)
	}
	return ports, nil
}

// free says whether p can be bound on 127.0.0.1 for TCP and for UDP.
func free(p int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(p)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	pc.Close()
	return true
}

// belowEphemeral returns the port range [lo, hi) from 20000 up to the start
// of the kernel's ephemeral range. Ports below 20000 are left alone: the
// examples' workloads and `causeway up` use fixed ones there (14xxx, 15xxx).
func belowEphemeral() (lo, hi int) {
	lo, hi = 20000, 32768 // Linux's default ephemeral range starts at 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				hi = v
			}
		}
	}
	return lo, hi
}

// kernelPorts lets the kernel choose n distinct ports, holding each until
// all are chosen.
func kernelPorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
