package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/causeway-mesh/causeway/internal/redirect/origdst"
	"github.com/causeway-mesh/causeway/spec"
)

// Transparent mode (issue 5): iptables REDIRECTs the pod's TCP to the
// proxy, which reads the original destination back with SO_ORIGINAL_DST.
//
// Outbound, the destination the app dialled is looked up in the routing
// state's transparent map (endpoint address:port -> upstream service port,
// built by buildTransparent from the config) and the connection is served
// by dispatchFixed exactly as a fixed port for that service port would
// serve it; a destination the config does not know is passed through as
// opaque TCP to where the app sent it. Inbound, see handleInbound.

// Results of the causeway_transparent_connections_total counter.
const (
	resultRouted      = "routed"      // mapped to a service port and served through the mesh
	resultPassthrough = "passthrough" // unknown destination (outbound) or unmeshed client (inbound, permissive), forwarded as opaque TCP
	resultRefused     = "refused"     // unmeshed client in strict mode, or a connection that was not redirected
	resultError       = "error"       // SO_ORIGINAL_DST unreadable, or the forward dial failed
)

// buildTransparent maps every address:port an app may dial to the
// fixed-port identity (upstream service, service port) of what it serves:
// an upstream's ClusterIPs at its service ports, and endpoints. An endpoint with a ServicePort is reached at Addr:Port
// (the pod's IP and target port); one without serves every port of its
// cluster, each at its target port. Only services the node may call are
// mapped: a cluster that is the backend of an upstream (a split's leaf) maps
// to that upstream, so the split still decides; its own upstream entry wins
// when it has one. Sorted input makes the choice deterministic.
func buildTransparent(cfg *spec.NodeConfig, t *spec.Table) map[netip.AddrPort]*fixedListener {
	out := map[netip.AddrPort]*fixedListener{}
	root := map[spec.Key]spec.Key{} // cluster service -> upstream that routes to it
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		add := func(bs []spec.WeightedCluster) {
			for _, b := range bs {
				if _, ok := root[b.Service]; !ok {
					root[b.Service] = u.Service
				}
			}
		}
		add(u.Default)
		for _, r := range u.Routes {
			add(r.Backends)
		}
	}
	for i := range cfg.Upstreams {
		root[cfg.Upstreams[i].Service] = cfg.Upstreams[i].Service
	}
	fls := map[[2]string]*fixedListener{}
	fixed := func(k spec.Key, port int32) *fixedListener {
		id := [2]string{k.String(), strconv.Itoa(int(port))}
		if fl := fls[id]; fl != nil {
			return fl
		}
		fl := &fixedListener{idx: -1, fp: FixedPort{Service: k.String(), Port: port, Listen: "transparent"}, key: k}
		fls[id] = fl
		return fl
	}
	put := func(addr string, port, svcPort int32, up spec.Key) {
		a, err := netip.ParseAddr(addr)
		if err != nil || port <= 0 || port > 65535 {
			return // a hostname endpoint cannot be an original destination
		}
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		if _, dup := out[ap]; dup {
			return
		}
		if t.Upstream(up) == nil {
			return
		}
		out[ap] = fixed(up, svcPort)
	}
	// A ClusterIP at a service port is the upstream itself: what apps
	// dial by name through kube-proxy.
	for i := range cfg.Upstreams {
		u := &cfg.Upstreams[i]
		for _, ip := range u.ClusterIPs {
			for _, p := range u.Ports {
				put(ip, p.Port, p.Port, u.Service)
			}
		}
	}
	for i := range cfg.Clusters {
		c := &cfg.Clusters[i]
		up, ok := root[c.Service]
		if !ok {
			continue
		}
		for _, e := range c.Endpoints {
			if e.ServicePort != 0 {
				put(e.Addr, e.Port, e.ServicePort, up)
				continue
			}
			for _, p := range c.Ports {
				put(e.Addr, cmpOr(p.TargetPort, p.Port), p.Port, up)
			}
		}
	}
	return out
}

func cmpOr(a, b int32) int32 {
	if a != 0 {
		return a
	}
	return b
}

// startTransparent binds outbound.transparent and starts its accept loop.
func (p *Proxy) startTransparent() error {
	a := p.boot.Outbound.Transparent
	if a == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		return fmt.Errorf("outbound.transparent: %w", err)
	}
	p.lns = append(p.lns, ln)
	p.trLn = ln
	p.wg.Add(1)
	go p.acceptTransparent(ln)
	return nil
}

// TransparentAddr is the transparent outbound listener's address (after
// Start), or nil.
func (p *Proxy) TransparentAddr() net.Addr {
	if p.trLn == nil {
		return nil
	}
	return p.trLn.Addr()
}

func (p *Proxy) acceptTransparent(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond)
			continue
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		dst, err := origdst.Get(tc)
		if err != nil {
			p.m.transparent.WithLabelValues("outbound", resultError).Inc()
			c.Close()
			continue
		}
		p.serveTransparent(tc, dst)
	}
}

// serveTransparent serves one redirected outbound connection whose
// original destination is dst. It must not block: it runs on the accept
// loop (dispatchFixed and passthrough start their own goroutines).
func (p *Proxy) serveTransparent(c net.Conn, dst netip.AddrPort) {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	// Not redirected (someone dialled the listener itself, and conntrack
	// reports the address it reached): forwarding to dst would dial
	// ourselves forever.
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok && la.AddrPort().Addr().Unmap() == dst.Addr() && la.AddrPort().Port() == dst.Port() {
		p.m.transparent.WithLabelValues("outbound", resultRefused).Inc()
		c.Close()
		return
	}
	st := p.state.Load()
	if fl := st.transparent[dst]; fl != nil {
		p.m.transparent.WithLabelValues("outbound", resultRouted).Inc()
		p.dispatchFixed(c, st, fl)
		return
	}
	p.passthrough(c, "outbound", dst.String())
}

// passthrough forwards c as opaque TCP to addr on its own goroutine, which
// owns c from here on.
func (p *Proxy) passthrough(c net.Conn, direction, addr string) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer c.Close()
		start := time.Now()
		// Close must not wait out a slow dial: p.done cancels it.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		up, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		cancel() // also ends the goroutine above
		if err != nil {
			p.m.transparent.WithLabelValues(direction, resultError).Inc()
			return
		}
		p.m.transparent.WithLabelValues(direction, resultPassthrough).Inc()
		p.pipe(direction, "passthrough", c, up, flowTap{endpoint: addr}, start)
	}()
}
