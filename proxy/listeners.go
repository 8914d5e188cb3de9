package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

type atomicState = atomic.Pointer[routingState]

// chanListener hands connections accepted elsewhere (after the proxy looked
// at them) to an http.Server.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// push gives the server a connection; false when the listener is closed.
func (l *chanListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// taggedConn carries what the accept loop learned about a connection (the
// fixed port, or the inbound service port) to the http.Server's ConnContext.
type taggedConn struct {
	net.Conn
	tag any
}

type fixedKey struct{}

// fixedListener is one bound outbound fixed port: a TCP listener or, for a
// UDP service port, a UDP socket.
type fixedListener struct {
	idx  int // in Bootstrap.Outbound.Ports
	fp   FixedPort
	key  spec.Key
	udp  bool
	tcp  net.Listener
	conn *net.UDPConn
	once sync.Once
}

func (fl *fixedListener) close() {
	fl.once.Do(func() {
		if fl.tcp != nil {
			fl.tcp.Close()
		}
		if fl.conn != nil {
			fl.conn.Close()
		}
	})
}

// FixedAddr returns the bound address of the fixed port for service
// ("ns/name") and port, or nil; useful when the bootstrap said port 0.
func (p *Proxy) FixedAddr(service string, port int32) net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, fl := range p.fixed {
		if fl.fp.Service == service && fl.fp.Port == port {
			if fl.udp {
				return fl.conn.LocalAddr()
			}
			return fl.tcp.Addr()
		}
	}
	return nil
}

// wantUDP says whether a fixed port must be a UDP socket under table t.
func wantUDP(t *spec.Table, k spec.Key, port int32) bool {
	if up := t.Upstream(k); up != nil {
		for _, p := range up.Ports {
			if p.Port == port {
				return p.Protocol == spec.ProtocolUDP
			}
		}
	}
	return false
}

// bindFixed binds the fixed ports whose socket kind is new under table t.
// It binds everything before anything is swapped, so a port that cannot be
// bound refuses the whole config. Called with p.mu held.
func (p *Proxy) bindFixed(t *spec.Table) ([]*fixedListener, error) {
	var bound []*fixedListener
	fail := func(err error) ([]*fixedListener, error) {
		for _, fl := range bound {
			fl.close()
		}
		return nil, err
	}
	for i, fp := range p.boot.Outbound.Ports {
		k, _ := fp.Key()
		udp := wantUDP(t, k, fp.Port)
		if cur := p.fixed[i]; cur != nil && cur.udp == udp {
			continue
		}
		fl := &fixedListener{idx: i, fp: fp, key: k, udp: udp}
		if udp {
			a, err := net.ResolveUDPAddr("udp", fp.Listen)
			if err == nil {
				fl.conn, err = net.ListenUDP("udp", a)
			}
			if err != nil {
				return fail(fmt.Errorf("outbound.ports[%d] (%s:%d): %w", i, fp.Service, fp.Port, err))
			}
		} else {
			ln, err := net.Listen("tcp", fp.Listen)
			if err != nil {
				return fail(fmt.Errorf("outbound.ports[%d] (%s:%d): %w", i, fp.Service, fp.Port, err))
			}
			fl.tcp = ln
		}
		bound = append(bound, fl)
	}
	return bound, nil
}

// swapFixed starts serving newly bound fixed ports and closes the ones they
// replace. Connections already accepted on a replaced listener keep going.
// Called with p.mu held.
func (p *Proxy) swapFixed(bound []*fixedListener) {
	for _, fl := range bound {
		if old := p.fixed[fl.idx]; old != nil {
			old.close()
		}
		p.fixed[fl.idx] = fl
		p.wg.Add(1)
		if fl.udp {
			go p.serveFixedUDP(fl)
		} else {
			go p.serveFixedTCP(fl)
		}
	}
}

// serveFixedTCP accepts on a fixed port and, per connection, looks at the
// config in force: HTTP-family ports go to the fixed-port http.Server, TCP
// ports are proxied at L4.
func (p *Proxy) serveFixedTCP(fl *fixedListener) {
	defer p.wg.Done()
	for {
		c, err := fl.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and the like: back off
			continue
		}
		p.dispatchFixed(c, p.state.Load(), fl)
	}
}

// dispatchFixed serves one connection as the fixed port fl: HTTP-family
// ports go to the fast path or the fixed-port http.Server, TCP ports are
// proxied at L4 (as are other ports, which RouteL4 refuses), an unknown port is closed. The transparent listener calls it
// too, with the fixedListener its original destination maps to.
func (p *Proxy) dispatchFixed(c net.Conn, st *routingState, fl *fixedListener) {
	port, ok := st.portOf(fl.key, fl.fp.Port)
	switch {
	case ok && port.Protocol == spec.ProtocolHTTP:
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serveH1(c, fl, nil, p.fixedCL, fl)
		}()
	case ok && port.Protocol.IsHTTP():
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serveHTTPFamily(c, p.fixedCL, fixedKey{}, fl, p.serveFixed)
		}()
	case ok:
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serveTCP(c, st, fl.key, port)
		}()
	default:
		c.Close()
	}
}

// serveFixed handles an HTTP request on a fixed port.
func (p *Proxy) serveFixed(w http.ResponseWriter, r *http.Request) {
	fl, _ := r.Context().Value(fixedKey{}).(*fixedListener)
	if fl == nil {
		w.WriteHeader(500)
		return
	}
	k := fl.key
	st := p.state.Load()
	port, ok := st.portOf(k, fl.fp.Port)
	if !ok || !port.Protocol.IsHTTP() {
		w.WriteHeader(503)
		return
	}
	p.serveOutbound(w, r, st, k, port)
}

// serveFixedUDP relays datagrams of a fixed UDP port: each new client
// address is routed once (UDPRoute ports, split, balancer) and keeps its
// upstream for the session.
func (p *Proxy) serveFixedUDP(fl *fixedListener) {
	defer p.wg.Done()
	r := newUDPRelay(p, fl.conn, "outbound", func([]byte) (udpTarget, int, bool) {
		st := p.state.Load()
		up := st.upstreams[fl.key]
		port, ok := st.portOf(fl.key, fl.fp.Port)
		if !ok || up == nil {
			return udpTarget{}, 0, false
		}
		dec, _ := st.table.RouteL4(fl.key, spec.RouteUDP, fl.fp.Port)
		b, ok := pickWeighted(dec.Backends)
		if !ok {
			return udpTarget{}, 0, false
		}
		cp := st.cluster(b.Service, port.Port, port.Protocol)
		if cp == nil {
			return udpTarget{}, 0, false
		}
		pick, err := cp.lb.Pick()
		if err != nil {
			return udpTarget{}, 0, false
		}
		addr := pick.Addr
		t := udpTarget{addr: addr, service: up.name, done: pick.Done}
		if _, meshed := (*cp.meshed.Load())[addr]; meshed {
			t.port = fl.fp.Port
		}
		return t, 0, true
	})
	r.run()
}
