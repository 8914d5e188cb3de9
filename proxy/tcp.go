package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

// closeWriter is a connection that can half-close (TCP FIN) so the far side
// sees EOF on one direction while the other still flows.
type closeWriter interface{ CloseWrite() error }

// relay copies bytes both ways until both directions end. With both ends
// *net.TCPConn, io.CopyBuffer goes through TCPConn.WriteTo/ReadFrom, which
// splice on Linux and never touch the pooled buffer. It returns bytes client->upstream and
// upstream->client. The calling goroutine owns one direction; one goroutine
// is started for the other and has ended when relay returns.
func (p *Proxy) relay(client, upstream net.Conn) (up, down int64) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := p.bufs.Get()
		up, _ = io.CopyBuffer(upstream, client, buf)
		p.bufs.Put(buf)
		halfClose(upstream)
	}()
	buf := p.bufs.Get()
	down, _ = io.CopyBuffer(client, upstream, buf)
	p.bufs.Put(buf)
	halfClose(client)
	<-done
	return up, down
}

func halfClose(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// serveTCP proxies one outbound TCP flow to service svc on port: TCPRoute
// ports through spec.Table.RouteL4, then the split, breaker and balancer.
// It owns client and closes it.
func (p *Proxy) serveTCP(client net.Conn, st *routingState, svc spec.Key, port spec.Port) {
	defer client.Close()
	t0 := time.Now()
	up := st.upstreams[svc]
	dec, ok := st.table.RouteL4(svc, spec.RouteTCP, port.Port)
	if !ok || up == nil {
		return
	}
	var f flowTap
	fail := func() { p.tapFlow("outbound", up.name, f, t0, "failure", 0, 0) }
	backend, ok := pickWeighted(dec.Backends)
	if !ok {
		fail()
		return
	}
	f.backend = backend.Service.String()
	cp := st.cluster(backend.Service, port.Port, port.Protocol)
	if cp == nil {
		fail()
		return
	}
	var conn net.Conn
	for attempt := 0; ; attempt++ {
		done, ok := cp.breaker.Allow()
		if !ok {
			fail()
			return
		}
		pick, err := cp.lb.Pick()
		if err != nil {
			done(false)
			fail()
			return
		}
		f.endpoint = pick.Addr
		t1 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err = cp.dial(ctx, "tcp", pick.Addr)
		cancel()
		pick.Done(time.Since(t1), err != nil)
		done(err == nil)
		if err == nil {
			break
		}
		// No byte of the flow has been sent, so a failed connect is safe to
		// try again on another endpoint (Envoy's TCP proxy's connect
		// attempts); when the refusal ejected the last endpoint of a
		// priority level, that is the next level (failover).
		if attempt >= up.Retry.Attempts || !up.budget.Withdraw() {
			fail()
			return
		}
		p.m.retries.WithLabelValues(up.name).Inc()
	}
	p.pipe("outbound", up.name, client, conn, f, t0)
}

// pipe relays a flow and accounts for it; it closes upstream, and the
// proxy's Close ends it by closing both ends.
// A tap subscriber sees the flow when it ends.
func (p *Proxy) pipe(direction, service string, client, upstream net.Conn, f flowTap, start time.Time) {
	defer upstream.Close()
	if !p.track(client, upstream) {
		return
	}
	defer p.untrack(client, upstream)
	p.m.tcpOpen.WithLabelValues(direction, service).Inc()
	up, down := p.relay(client, upstream)
	p.m.tcpClose.WithLabelValues(direction, service).Inc()
	p.m.tcpBytes.WithLabelValues(direction, service, "read").Add(float64(up))
	p.m.tcpBytes.WithLabelValues(direction, service, "write").Add(float64(down))
	p.tapFlow(direction, service, f, start, "success", up, down)
}

// track registers live L4 connections so Close can end them; it refuses
// once the proxy is closing.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.connMu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.connMu.Unlock()
}

// serveConnect tunnels a CONNECT request (HTTP/1.1 only) to a mesh service
// as an L4 flow: TCPRoute ports, split and balancer as for a fixed TCP port.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	host, port, ok := splitHostPort(r.Host, 443)
	st := p.state.Load()
	var svc spec.Key
	if ok {
		svc, ok = st.table.Resolve(host)
	}
	if !ok {
		http.Error(w, "causeway: "+r.Host+" is not a service of the mesh", http.StatusBadGateway)
		return
	}
	sp, ok := st.portOf(svc, port)
	if !ok || sp.Protocol == spec.ProtocolUDP {
		http.Error(w, "causeway: "+svc.String()+" has no TCP port "+strconv.Itoa(int(port)), http.StatusBadGateway)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "causeway: CONNECT needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		c.Close()
		return
	}
	client := c
	if n := brw.Reader.Buffered(); n > 0 {
		// The client sent tunnel bytes right behind the request; keep them.
		client = &prefixConn{Conn: c, r: io.MultiReader(io.LimitReader(brw.Reader, int64(n)), c)}
	}
	p.serveTCP(client, st, svc, sp)
}

// prefixConn replays bytes read ahead of a connection's owner.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(b []byte) (int, error) { return c.r.Read(b) }
