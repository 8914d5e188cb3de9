package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// udpIdle ends a UDP session that has seen no datagram either way for this
// long (what conntrack does for unreplied UDP, give or take).
const udpIdle = 60 * time.Second

// udpTarget is where a new session of a client goes.
type udpTarget struct {
	addr    string
	port    int32 // service port for the preamble; 0 = send no preamble
	service string
	done    func(rtt time.Duration, failed bool)
}

// udpRelay proxies datagrams from one listening socket: one session (a
// connected upstream socket) per client address, so replies go back to the
// client that caused them. The relay's own goroutine owns the session map
// for reading; each session owns one goroutine reading its upstream socket.
type udpRelay struct {
	p         *Proxy
	ln        *net.UDPConn
	direction string
	idle      time.Duration
	// target picks the upstream of a new session from the client's first
	// datagram; for inbound it reads and strips the preamble (strip > 0).
	target func(first []byte) (t udpTarget, strip int, ok bool)

	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
	wg       sync.WaitGroup
}

type udpSession struct {
	up      *net.UDPConn
	port    int32
	service string
	last    atomic.Int64 // unix nanos of the last datagram either way
}

func newUDPRelay(p *Proxy, ln *net.UDPConn, direction string, target func([]byte) (udpTarget, int, bool)) *udpRelay {
	return &udpRelay{p: p, ln: ln, direction: direction, idle: udpIdle, target: target, sessions: map[netip.AddrPort]*udpSession{}}
}

// run reads client datagrams until the socket is closed.
func (r *udpRelay) run() {
	defer r.wg.Wait()
	buf := make([]byte, preambleLen+64<<10)
	for {
		// Read after room for a preamble so a meshed session can prepend
		// one without copying the payload.
		n, client, err := r.ln.ReadFromUDPAddrPort(buf[preambleLen:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				r.closeSessions()
				return
			}
			continue
		}
		payload := buf[preambleLen : preambleLen+n]
		r.mu.Lock()
		s := r.sessions[client]
		r.mu.Unlock()
		if s == nil {
			t, strip, ok := r.target(payload)
			if !ok {
				continue
			}
			payload = payload[strip:]
			if s = r.open(client, t); s == nil {
				continue
			}
		} else if r.direction == "inbound" {
			payload = payload[min(preambleLen, len(payload)):]
		}
		s.last.Store(time.Now().UnixNano())
		out := payload
		if s.port != 0 {
			start := len(buf) - cap(payload) - preambleLen // offset of payload in buf, minus room
			putPreamble(buf[start:], s.port)
			out = buf[start : start+preambleLen+len(payload)]
		}
		if _, err := s.up.Write(out); err == nil {
			r.p.m.udpBytes.WithLabelValues(r.direction, s.service, "read").Add(float64(len(payload)))
		}
	}
}

func (r *udpRelay) open(client netip.AddrPort, t udpTarget) *udpSession {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := d.DialContext(ctx, "udp", t.addr)
	cancel()
	if t.done != nil {
		t.done(0, err != nil)
	}
	if err != nil {
		return nil
	}
	s := &udpSession{up: c.(*net.UDPConn), port: t.port, service: t.service}
	r.mu.Lock()
	r.sessions[client] = s
	r.mu.Unlock()
	r.p.m.udpSession.WithLabelValues(r.direction, t.service).Inc()
	r.wg.Add(1)
	go r.replies(client, s)
	return s
}

// replies copies upstream datagrams back to the client until the session
// idles out or the relay closes.
func (r *udpRelay) replies(client netip.AddrPort, s *udpSession) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		if r.sessions[client] == s {
			delete(r.sessions, client)
		}
		r.mu.Unlock()
		s.up.Close()
	}()
	buf := make([]byte, 64<<10)
	for {
		_ = s.up.SetReadDeadline(time.Now().Add(r.idle))
		n, err := s.up.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, s.last.Load())) < r.idle {
				continue
			}
			return // idle, closed, or refused: the next datagram opens a new session
		}
		s.last.Store(time.Now().UnixNano())
		if _, err := r.ln.WriteToUDPAddrPort(buf[:n], client); err == nil {
			r.p.m.udpBytes.WithLabelValues(r.direction, s.service, "write").Add(float64(n))
		}
	}
}

func (r *udpRelay) closeSessions() {
	r.mu.Lock()
	for _, s := range r.sessions {
		s.up.Close()
	}
	r.mu.Unlock()
}
