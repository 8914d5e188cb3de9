package proxy

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/causeway-mesh/causeway/spec"
)

// serveOutbound is serveOutbound (httpout.go) for one fast-path request on
// a fixed port: the same routing calls, breaker, balancer, retries, route
// timeout, metrics and tap. n is the length of the request head in the read
// buffer. It returns whether to keep the connection and whether to hand it
// to net/http instead (nothing consumed, nothing counted).
func (s *h1ServerConn) serveOutbound(n int) (keep, fallback bool) {
	p, fl, c := s.p, s.fl, &s.cache
	st := p.state.Load()
	if c.st != st {
		c.load(st)
		c.port, c.portOK = st.portOf(fl.key, fl.fp.Port)
		c.up = st.upstreams[fl.key]
	}
	port, up := c.port, c.up
	if !c.portOK || port.Protocol != spec.ProtocolHTTP || up == nil {
		return false, true
	}
	s.sreq = spec.Request{Method: methodString(s.req.method), Path: s.req.path(), Header: &s.req}
	dec, ok := st.table.RouteHTTP(fl.key, &s.sreq)
	if !ok {
		return false, true
	}
	backend, _ := pickWeighted(dec.Backends)
	if c.cp == nil || c.cpKey != backend.Service {
		c.cp, c.cpKey = st.cluster(backend.Service, port.Port, port.Protocol), backend.Service
	}
	cp := c.cp
	if cp == nil || cp.h1 == nil {
		return false, true
	}
	s.consume(n)
	route := dec.Match
	if route == "" {
		route = "default"
	}
	backendName := cp.svcName
	series := c.metrics(p.m, "outbound", up.name, route, backendName)
	series.requests.Inc()
	up.budget.Deposit()
	retry := up.Retry.Attempts > 0 && s.req.contentLength <= 0 && isIdempotent(s.sreq.Method)
	var deadline time.Time
	if d := up.timeout(dec.Match); d > 0 {
		// From when the head arrived (microseconds ago): one clock read less.
		deadline = s.reqStart.Add(d)
	}

	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	var (
		uc       *h1Conn
		err      error
		endpoint string
	)
	for attempt := 0; ; attempt++ {
		done, ok := cp.breaker.Allow()
		if !ok {
			err = errCircuitOpen
			break
		}
		pick, perr := cp.lb.Pick()
		if perr != nil {
			done(false)
			err = errNoEndpoints
			break
		}
		endpoint = pick.Addr
		t0 := s.reqStart // the first attempt: as good as now, and no clock read
		if attempt > 0 {
			t0 = time.Now()
		}
		uc, err = s.exchange(cp.h1, pick.Addr, deadline, "", buf)
		failed := err != nil || s.resp.status >= 500 || (s.resp.status == 200 && string(s.resp.grpcStatus) == "14")
		pick.Done(time.Since(t0), failed)
		done(!failed)
		if !failed || !retry || attempt >= up.Retry.Attempts || errors.Is(err, errTimeout) {
			break
		}
		if !up.budget.Withdraw() {
			p.m.exhausted.WithLabelValues(up.name).Inc()
			break
		}
		p.m.retries.WithLabelValues(up.name).Inc()
		if uc != nil {
			s.discardResponse(cp.h1, uc, buf)
			uc = nil
		}
	}
	r := s.finish(uc, err, cp.h1, buf, series)
	if p.tap.active() {
		p.tap.publish(&TapEvent{Time: s.reqStart, Direction: "outbound", Service: up.name, Route: route, Backend: backendName,
			Endpoint: endpoint, Method: s.sreq.Method, Authority: string(s.req.host), Path: s.sreq.Path, Status: r.status,
			GRPCStatus: r.gs, Classification: r.class, LatencyMs: r.latencyMs()})
	}
	return s.flush(r), false
}

// serveInbound is serveInbound (inbound.go) for one fast-path request to an
// HTTP/1.1 app port. A denied request falls back: net/http's path answers
// 403 and counts it.
func (s *h1ServerConn) serveInbound(n int) (keep, fallback bool) {
	p, ic, c := s.p, s.ic, &s.cache
	st := p.state.Load()
	if c.st != st {
		c.load(st)
		c.ib = st.inbound[ic.port]
	}
	ib := c.ib
	if ib == nil || ib.port.Protocol != spec.ProtocolHTTP {
		return false, true
	}
	s.sreq = spec.Request{Method: methodString(s.req.method), Path: s.req.path(), Header: &s.req}
	dec := st.table.Authorize(ic.caller, spec.RouteHTTP, ic.port, &s.sreq)
	if !dec.Allowed {
		return false, true
	}
	s.consume(n)
	ic.allowed(p.m).Inc()
	route := dec.Match
	if route == "" {
		route = "default"
	}
	series := c.metrics(p.m, "inbound", ib.name, route, "app")
	series.requests.Inc()
	buf := p.bufs.Get()
	defer p.bufs.Put(buf)
	xfcc := ""
	if !ic.caller.IsZero() {
		xfcc = ic.xfcc
	}
	uc, err := s.exchange(p.appFast, ib.appAddr, time.Time{}, xfcc, buf)
	r := s.finish(uc, err, p.appFast, buf, series)
	if ic.peerTD != "" {
		p.m.peer.WithLabelValues(ib.name, ic.peerTD, r.class).Observe(r.elapsed.Seconds())
	}
	if p.tap.active() {
		caller := ""
		if !ic.caller.IsZero() {
			caller = ic.caller.String()
		}
		p.tap.publish(&TapEvent{Time: s.reqStart, Direction: "inbound", Service: ib.name, Route: route, Backend: "app",
			Endpoint: ib.appAddr, Caller: caller, Method: s.sreq.Method, Authority: string(s.req.host), Path: s.sreq.Path,
			Status: r.status, GRPCStatus: r.gs, Classification: r.class, LatencyMs: r.latencyMs()})
	}
	return s.flush(r), false
}

// finished is one fast-path request as answered and counted.
type finished struct {
	status    int
	gs, class string
	keep      bool
	end       time.Time
	elapsed   time.Duration
}

func (r *finished) latencyMs() float64 { return float64(r.elapsed.Microseconds()) / 1000 }

// finish writes the upstream's answer (or the error's) to the client and
// counts it on the route's series. An answer cut short counts as a failure
// whatever its status said. The caller then publishes its tap event and
// calls flush.
func (s *h1ServerConn) finish(uc *h1Conn, err error, h *h1Client, buf []byte, series *routeSeries) finished {
	status, gs, keep, aborted := s.respond(uc, err, h, buf)
	class := classify(status, gs)
	if aborted {
		class = "failure"
	}
	end := time.Now()
	r := finished{status: status, gs: gs, class: class, keep: keep, end: end, elapsed: end.Sub(s.reqStart)}
	series.done(status, gs, class, r.elapsed.Seconds())
	return r
}

// flush ends the request: the next one's latency counts from here, and the
// buffered answer goes out. It reports whether the connection stays open.
func (s *h1ServerConn) flush(r finished) bool {
	s.reqStart = r.end
	return s.bw.Flush() == nil && r.keep
}

// consume takes the request head of length n off the read buffer. A body
// is read without the head's deadline, as net/http does (no ReadTimeout):
// uploads may take their time.
func (s *h1ServerConn) consume(n int) {
	_, _ = s.br.Discard(n)
	if s.req.contentLength > 0 {
		_ = s.nc.SetReadDeadline(time.Time{})
		s.rdArmed = false
	}
}

// allowed is the connection's allow counter of
// causeway_inbound_authorization_total, resolved once per connection.
func (ic *inboundConn) allowed(m *metrics) prometheus.Counter {
	if ic.allow == nil {
		label := "none"
		if !ic.caller.IsZero() {
			label = ic.caller.String()
		}
		ic.allow = m.authz.WithLabelValues(label, "allow")
	}
	return ic.allow
}

// exchange sends the request to addr on a pooled connection of h and reads
// the final response head into s.resp. As in h1Client.roundTrip, a bodiless
// request that fails on a reused connection is sent once more on a fresh
// one, and passing the deadline (zero: none) before the head is errTimeout.
// xfcc, when set, replaces any X-Forwarded-Client-Cert.
func (s *h1ServerConn) exchange(h *h1Client, addr string, deadline time.Time, xfcc string, buf []byte) (*h1Conn, error) {
	hasBody := s.req.contentLength > 0
	for try := 0; ; try++ {
		c, reused, err := h.get(context.Background(), addr, try > 0, s.reqStart)
		if err != nil {
			return nil, err
		}
		switch {
		case deadline.IsZero():
			if c.deadline {
				_ = c.nc.SetDeadline(time.Time{})
				c.deadline = false
			}
		case c.deadline && !hasBody && !c.dl.After(deadline) && c.dl.Sub(s.reqStart) >= deadline.Sub(s.reqStart)/2:
			// An earlier request's deadline, no later than ours and not
			// due for at least half our timeout: kept, which saves a timer
			// update per request. Should it fire before ours, the head
			// read re-arms ours (a request with a body, whose upload might
			// block a write that long, always gets its own).
		default:
			_ = c.nc.SetDeadline(deadline)
			c.deadline, c.dl = true, deadline
		}
		err = s.writeRequest(c.bw, xfcc, buf)
		if err == nil {
			err = c.bw.Flush()
		}
		if err == nil {
			err = readResponseHead(c, &s.resp, deadline)
		}
		if err == nil {
			// The deadline stays until the body needs a read (respond
			// clears it then) or the next request sets its own.
			return c, nil
		}
		c.nc.Close()
		var ne net.Error
		if !deadline.IsZero() && errors.As(err, &ne) && ne.Timeout() {
			return nil, errTimeout
		}
		if !reused || hasBody || try > 0 || errors.Is(err, errBadResponse) {
			return nil, err
		}
	}
}

// errBadResponse marks a response the fast path could not parse or frame.
var errBadResponse = errors.New("malformed response from upstream")

// writeRequest writes the request head without hop-by-hop fields (Host
// first, as Go's client does) and then its body from the client.
func (s *h1ServerConn) writeRequest(w *bufio.Writer, xfcc string, buf []byte) error {
	r := &s.req
	w.Write(r.method)
	w.WriteByte(' ')
	w.Write(r.target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.Write(r.host)
	w.WriteString("\r\n")
	inbound := s.ic != nil
	for i := range r.fields {
		f := &r.fields[i]
		if f.drop || (inbound && equalFold(f.name, "x-forwarded-client-cert")) {
			continue
		}
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	if r.teTrailers {
		w.WriteString("Te: trailers\r\n")
	}
	if xfcc != "" {
		w.WriteString(xfccHeader + ": ")
		w.WriteString(xfcc)
		w.WriteString("\r\n")
	}
	_, err := w.WriteString("\r\n")
	if err == nil && r.contentLength > 0 {
		if err = copyN(w, s.br, r.contentLength, buf); err == nil {
			r.contentLength = -2 // consumed: the connection can go on
		}
	}
	return err
}

// readResponseHead reads response heads until a final one (1xx other than
// 101 are skipped, as net/http's client does) and parses it into h. A
// connection deadline that fires before deadline (one kept from an earlier
// request) is moved to deadline and the read goes on.
func readResponseHead(c *h1Conn, h *h1Head, deadline time.Time) error {
	for {
		if err := readOneResponseHead(c, h, deadline); err != nil {
			return err
		}
		if h.status >= 200 {
			return nil
		}
		if h.status == 101 {
			return errBadResponse // never asked for: Upgrade goes through net/http
		}
	}
}

func readOneResponseHead(c *h1Conn, h *h1Head, deadline time.Time) error {
	r := c.br
	scanned := 0
	var acc []byte // for a head larger than r's buffer
	for {
		if r.Buffered() == 0 {
			if _, err := r.Peek(1); err != nil {
				if c.rearm(err, deadline) {
					continue
				}
				return err
			}
		}
		b, _ := r.Peek(r.Buffered())
		if acc == nil {
			if n := headEnd(b, scanned); n > 0 {
				err := parseResponseHead(b[:n], h)
				_, _ = r.Discard(n)
				if err != nil {
					return errBadResponse
				}
				return nil
			}
			scanned = len(b)
			if len(b) < r.Size() {
				if _, err := r.Peek(len(b) + 1); err != nil && !c.rearm(err, deadline) {
					return err
				}
				continue
			}
		}
		old := len(acc)
		acc = append(acc, b...)
		if n := headEnd(acc, old); n > 0 {
			_, _ = r.Discard(n - old)
			if parseResponseHead(acc[:n], h) != nil {
				return errBadResponse
			}
			return nil
		}
		_, _ = r.Discard(len(b))
		if len(acc) > 1<<20 {
			return errBadResponse
		}
	}
}

// rearm moves a deadline that fired early (kept from an earlier request)
// to deadline and says whether to read again. bufio.Reader hands a read
// error out once, so the next Peek reads afresh.
func (c *h1Conn) rearm(err error, deadline time.Time) bool {
	if deadline.IsZero() || !c.deadline || !c.dl.Before(deadline) || !errors.Is(err, os.ErrDeadlineExceeded) ||
		!time.Now().Before(deadline) {
		return false
	}
	_ = c.nc.SetDeadline(deadline)
	c.dl = deadline
	return true
}

// discardResponse drops a failed attempt's response (up to 64 KiB of body,
// as attempts does) before a retry, keeping the connection when it can.
func (s *h1ServerConn) discardResponse(h *h1Client, uc *h1Conn, buf []byte) {
	r := &s.resp
	if r.close || r.chunked || r.teOther || r.contentLength < 0 || r.contentLength > 64<<10 || noResponseBody(s.req.method, r.status) {
		if noResponseBody(s.req.method, r.status) && !r.close {
			h.put(uc, s.reqStart)
			return
		}
		uc.nc.Close()
		return
	}
	if _, err := uc.br.Discard(int(r.contentLength)); err != nil {
		uc.nc.Close()
		return
	}
	h.put(uc, s.reqStart)
}

func noResponseBody(method []byte, status int) bool {
	return status == 204 || status == 304 || status < 200 || string(method) == "HEAD"
}

// respond writes the response (or the error) to the client, leaving the
// last bytes in the buffer: the caller counts the request and then
// flushes, so a client that has its response finds it counted. It returns the
// status and grpc-status for metrics, whether the client connection stays
// open, and whether the body broke off (the client connection is then cut,
// as net/http's path does with ErrAbortHandler).
func (s *h1ServerConn) respond(uc *h1Conn, err error, h *h1Client, buf []byte) (status int, gs string, keep, aborted bool) {
	w := s.bw
	// A body still unread from the client (the request never left) would
	// be taken for the next request: close instead.
	closeAfter := s.req.close || s.req.contentLength > 0
	if err == nil && s.resp.teOther {
		uc.nc.Close()
		err = errBadResponse
	}
	if err != nil {
		status = writeProxyError(w, err, closeAfter)
		return status, "", !closeAfter, false
	}
	r := &s.resp
	status = r.status
	if r.grpcStatus != nil {
		gs = grpcStatusString(r.grpcStatus)
	}
	w.WriteString("HTTP/1.1 ")
	writeInt(w, int64(r.status))
	w.WriteByte(' ')
	w.Write(r.reason)
	w.WriteString("\r\n")
	framed := r.chunked
	for i := range r.fields {
		f := &r.fields[i]
		if f.drop || (framed && equalFold(f.name, "content-length")) {
			continue
		}
		w.Write(f.name)
		w.WriteString(": ")
		w.Write(f.value)
		w.WriteString("\r\n")
	}
	noBody := noResponseBody(s.req.method, r.status)
	toEOF := !noBody && !r.chunked && r.contentLength < 0
	if !noBody && (r.chunked || toEOF) {
		w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if closeAfter {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	if uc.deadline && !noBody && (r.contentLength < 0 || int64(uc.br.Buffered()) < r.contentLength) {
		// The route timeout bounds the wait for the head, not the body.
		_ = uc.nc.SetDeadline(time.Time{})
		uc.deadline = false
	}
	var cerr error
	switch {
	case noBody:
	case r.chunked:
		cerr = copyChunked(w, uc.br, buf)
	case toEOF:
		cerr = copyToEOF(w, uc.br, buf)
	default:
		cerr = copyN(w, uc.br, r.contentLength, buf)
	}
	if cerr != nil {
		uc.nc.Close()
		return status, gs, false, true
	}
	if r.close || toEOF {
		uc.nc.Close()
	} else {
		h.put(uc, s.reqStart)
	}
	return status, gs, !closeAfter, false
}

// grpcStatusString interns the usual codes for the metric label.
func grpcStatusString(b []byte) string {
	switch string(b) {
	case "0":
		return "0"
	case "14":
		return "14"
	}
	return string(b)
}

// writeProxyError answers as proxyError does and returns the status.
func writeProxyError(w *bufio.Writer, err error, closeAfter bool) int {
	code := 502
	switch {
	case errors.Is(err, errTimeout):
		code = 504
	case errors.Is(err, errCircuitOpen), errors.Is(err, errNoEndpoints), errors.Is(err, errNoCluster):
		code = 503
	}
	msg := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, err.Error())
	w.WriteString("HTTP/1.1 ")
	writeInt(w, int64(code))
	w.WriteByte(' ')
	w.WriteString(statusText(code))
	w.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nCauseway-Error: ")
	w.WriteString(msg)
	w.WriteString("\r\nContent-Length: ")
	writeInt(w, int64(len("causeway: ")+len(msg)+1))
	if closeAfter {
		w.WriteString("\r\nConnection: close")
	}
	w.WriteString("\r\n\r\ncauseway: ")
	w.WriteString(msg)
	w.WriteString("\n")
	return code
}

func statusText(code int) string {
	switch code {
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	}
	return "Gateway Timeout"
}
