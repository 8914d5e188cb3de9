// Package loopback hands out loopback ports for the processes that tests and
// benchmarks start (apiservers, proxies, HAProxy, NGINX) and that must be told
// a port before they bind it.
package loopback

import "net"

// FreePorts returns n distinct ports on 127.0.0.1 that were free a moment
// ago. All n are held open until every one is chosen, so they differ; a
// process started afterwards may still lose one to a race, which is why
// callers wait for their children to come up.
func FreePorts(n int) ([]int, error) {
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
