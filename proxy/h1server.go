package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

// The HTTP/1.1 fast path serves plain HTTP/1.1 connections of the fixed
// ports and the inbound listener without net/http's server: one goroutine
// per connection reads a request head into a reused buffer (h1parse.go),
// routes it, writes it to the upstream from the parsed bytes and copies the
// response back, with no per-request goroutine, context, timer, map or
// Request. It takes only requests of the plain shape (origin-form, HTTP/1.1,
// Content-Length or no body, no Upgrade/Expect/Causeway-Retryable, head
// within the read buffer) and a route whose cluster speaks HTTP/1.1 through
// the h1 client. At the first request it does not take, it hands the
// connection, with every byte it has read ahead and not consumed, to the
// net/http server that served everything before it (h2c prior knowledge,
// chunked uploads, 100-continue, oversized heads -> 431, malformed -> 400,
// denials and routing errors), so those keep their behaviour exactly.

const (
	// h1ReadBuf bounds a request head on the fast path; a larger one goes
	// to net/http (whose limit is 1 MB).
	h1ReadBuf = 8 << 10
	// h1HeaderTimeout and h1IdleTimeout are the net/http servers'
	// ReadHeaderTimeout and IdleTimeout (proxy.go).
	h1IdleConn = 5 * time.Minute
)

// h1HeaderTimeout is the net/http servers' ReadHeaderTimeout (proxy.go); a
// variable so a test can make a slowloris give up sooner.
var h1HeaderTimeout = 30 * time.Second

var (
	h1ReaderPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h1ReadBuf) }}
	h1WriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

// h1Server tracks the fast path's connections so Close can end them.
type h1Server struct {
	closing atomic.Bool
	mu      sync.Mutex
	conns   map[*h1ServerConn]struct{}
	wg      sync.WaitGroup
}

// h1ServerConn is one client connection on the fast path. Owned by its
// goroutine.
type h1ServerConn struct {
	p    *Proxy
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	req  h1Head
	resp h1Head
	sreq spec.Request
	// Exactly one of fl (outbound fixed port) and ic (inbound) is set.
	fl *fixedListener
	ic *inboundConn
	// fallback is the net/http server's listener that takes the connection
	// over; tag is what its ConnContext expects.
	fallback *chanListener
	tag      any
	// reqStart is when the current request's head began arriving (between
	// requests: when the last response ended).
	reqStart time.Time
	// rdArmed says a header read deadline is set (see readHead).
	rdArmed bool
	// cache holds what the last request resolved under the routing state
	// it ran with; a keep-alive connection's next request usually needs
	// the same, and comparing keys is cheaper than hashing them again.
	cache h1Cache
}

// h1Cache is a connection's lookups from its last request. Everything in it
// is valid only for st (states are immutable; a swap changes the pointer).
type h1Cache struct {
	st     *routingState
	port   spec.Port
	portOK bool
	up     *upstreamPolicy // outbound
	ib     *inboundPort    // inbound
	cpKey  spec.Key        // backend service cp was looked up for
	cp     *clusterPort    // nil: not looked up yet
	route  string          // route label series was resolved for
	bk     string          // backend label series was resolved for
	series *routeSeries    // nil: not resolved yet
}

// load makes the cache current for st.
func (c *h1Cache) load(st *routingState) {
	if c.st != st {
		*c = h1Cache{st: st}
	}
}

// metrics returns the series of route/backend under direction dir and
// service svc (fixed for the connection).
func (c *h1Cache) metrics(m *metrics, dir, svc, route, backend string) *routeSeries {
	if c.series == nil || c.route != route || c.bk != backend {
		c.series, c.route, c.bk = m.route(dir, svc, route, backend), route, backend
	}
	return c.series
}

// serveH1 runs the fast path on c until it closes or falls back. It runs on
// the caller's goroutine.
func (p *Proxy) serveH1(c net.Conn, fl *fixedListener, ic *inboundConn, fallback *chanListener, tag any) {
	s := &h1ServerConn{p: p, nc: c, fl: fl, ic: ic, fallback: fallback, tag: tag}
	hs := &p.h1
	hs.mu.Lock()
	if hs.closing.Load() {
		hs.mu.Unlock()
		c.Close()
		return
	}
	if hs.conns == nil {
		hs.conns = map[*h1ServerConn]struct{}{}
	}
	hs.conns[s] = struct{}{}
	hs.wg.Add(1)
	hs.mu.Unlock()
	defer func() {
		hs.mu.Lock()
		delete(hs.conns, s)
		hs.mu.Unlock()
		hs.wg.Done()
	}()
	rw := newRawIO(c)
	s.br = h1ReaderPool.Get().(*bufio.Reader)
	s.br.Reset(rw)
	s.bw = h1WriterPool.Get().(*bufio.Writer)
	s.bw.Reset(rw)
	s.reqStart = time.Now()
	if s.loop() {
		s.handOver()
	} else {
		c.Close()
	}
	s.br.Reset(nil)
	h1ReaderPool.Put(s.br)
	s.bw.Reset(nil)
	h1WriterPool.Put(s.bw)
}

// loop serves requests; true means hand the connection to net/http.
func (s *h1ServerConn) loop() bool {
	for {
		n, err := s.readHead()
		if err != nil {
			return errors.Is(err, errH1Unusual)
		}
		head, _ := s.br.Peek(n)
		if parseRequestHead(head, &s.req) != nil {
			return true
		}
		var keep, fallback bool
		if s.fl != nil {
			keep, fallback = s.serveOutbound(n)
		} else {
			keep, fallback = s.serveInbound(n)
		}
		if fallback {
			return true
		}
		if !keep {
			return false
		}
	}
}

// readHead waits for a whole request head in the read buffer and returns
// its length, without consuming it. The connection may idle for
// h1IdleConn between requests; once a request has begun, its head must be
// in within h1HeaderTimeout (slowloris), as with net/http.
func (s *h1ServerConn) readHead() (int, error) {
	if s.p.h1.isClosing() {
		return 0, net.ErrClosed
	}
	// The read deadline is armed lazily. Any deadline no later than the
	// request's start plus h1HeaderTimeout bounds a slow head, and one
	// set for an earlier request (so firing early) is re-armed below: a
	// busy connection touches its timer once per h1HeaderTimeout, not once
	// per request. It counts from the end of the previous response, which
	// was timed anyway.
	if !s.rdArmed {
		s.rdArmed = true
		_ = s.nc.SetReadDeadline(s.reqStart.Add(h1HeaderTimeout))
		if s.p.h1.isClosing() {
			// Close may have set its deadline before ours: stop at the
			// next boundary rather than wait out the idle time.
			return 0, net.ErrClosed
		}
	}
	idleSince := s.reqStart
	waited := false
	for s.br.Buffered() == 0 {
		waited = true
		_, err := s.br.Peek(1)
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !s.p.h1.isClosing() && time.Since(idleSince) < h1IdleConn {
			_ = s.nc.SetReadDeadline(time.Now().Add(h1HeaderTimeout))
			continue
		}
		return 0, err
	}
	if waited {
		s.reqStart = time.Now()
	}
	scanned := 0
	for {
		b, _ := s.br.Peek(s.br.Buffered())
		if n := headEnd(b, scanned); n > 0 {
			return n, nil
		}
		scanned = len(b)
		if len(b) >= h1ReadBuf {
			return 0, errH1Unusual // net/http decides: 431 or a larger head
		}
		if _, err := s.br.Peek(len(b) + 1); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !s.p.h1.isClosing() && time.Since(s.reqStart) < h1HeaderTimeout {
				// The deadline counted from before the request began
				// (an idle keep-alive gap): the head gets its full time.
				_ = s.nc.SetReadDeadline(s.reqStart.Add(h1HeaderTimeout))
				continue
			}
			return 0, err
		}
	}
}

// handOver gives the connection, with the bytes read ahead, to net/http.
func (s *h1ServerConn) handOver() {
	if s.bw.Buffered() > 0 {
		if s.bw.Flush() != nil {
			s.nc.Close()
			return
		}
	}
	_ = s.nc.SetReadDeadline(time.Time{})
	var c net.Conn = s.nc
	if n := s.br.Buffered(); n > 0 {
		b, _ := s.br.Peek(n)
		ahead := bytes.Clone(b)
		c = &prefixConn{Conn: s.nc, r: io.MultiReader(bytes.NewReader(ahead), s.nc)}
	}
	if !s.fallback.push(&taggedConn{Conn: c, tag: s.tag}) {
		c.Close()
	}
}

func (hs *h1Server) isClosing() bool { return hs.closing.Load() }

// shutdown makes every connection stop at its next request boundary (a
// read deadline in the past ends the wait for the next head; a request in
// flight finishes), and closes the stragglers when ctx ends.
func (hs *h1Server) shutdown(ctx context.Context) {
	hs.closing.Store(true)
	hs.mu.Lock()
	for s := range hs.conns {
		_ = s.nc.SetReadDeadline(aLongTimeAgo)
	}
	hs.mu.Unlock()
	done := make(chan struct{})
	go func() {
		hs.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	hs.mu.Lock()
	for s := range hs.conns {
		s.nc.Close()
	}
	hs.mu.Unlock()
	<-done
}

// copyN copies n bytes from r to w. It flushes w before it would block on
// r, so a slow body streams instead of sitting in the buffer; big bodies
// move through buf (pooled, 32 KiB) without the bufio copy.
func copyN(w *bufio.Writer, r *bufio.Reader, n int64, buf []byte) error {
	for n > 0 {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
			if n >= int64(r.Size()) {
				m := min(int64(len(buf)), n)
				k, err := r.Read(buf[:m])
				if k > 0 {
					if _, werr := w.Write(buf[:k]); werr != nil {
						return werr
					}
					n -= int64(k)
				}
				if err != nil && n > 0 {
					return unexpected(err)
				}
				continue
			}
			if _, err := r.Peek(1); err != nil {
				return unexpected(err)
			}
		}
		m := min(int64(r.Buffered()), n)
		b, _ := r.Peek(int(m))
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, _ = r.Discard(int(m))
		n -= m
	}
	return nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// copyChunked copies a chunked body verbatim, chunk framing and trailer
// section included, flushing before it would block.
func copyChunked(w *bufio.Writer, r *bufio.Reader, buf []byte) error {
	for {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return unexpected(err)
		}
		size, ok := chunkSize(line)
		if !ok {
			return errors.New("malformed chunk size line")
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if size == 0 {
			break
		}
		// The chunk's data and the CRLF after it.
		if err := copyN(w, r, size+2, buf); err != nil {
			return err
		}
	}
	for { // trailer section, up to the blank line
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			return unexpected(err)
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			return w.Flush()
		}
	}
}

// chunkSize parses a chunk-size line (hex size, optional extensions, CRLF).
func chunkSize(line []byte) (int64, bool) {
	var n int64
	digits := 0
	for _, c := range line {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			if digits == 0 || digits > 15 {
				return 0, false
			}
			return n, c == ';' || c == '\r' || c == ' ' || c == '\t'
		}
		n = n<<4 | int64(d)
		digits++
	}
	return 0, false
}

// copyToEOF re-frames a body delimited by the upstream closing its
// connection as chunks to the client, so the client connection stays open.
func copyToEOF(w *bufio.Writer, r *bufio.Reader, buf []byte) error {
	for {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		k, err := r.Read(buf)
		if k > 0 {
			writeHex(w, k)
			w.WriteString("\r\n")
			w.Write(buf[:k])
			if _, werr := w.WriteString("\r\n"); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			_, werr := w.WriteString("0\r\n\r\n")
			return werr
		}
		if err != nil {
			return err
		}
	}
}

func writeHex(w *bufio.Writer, n int) {
	var b [16]byte
	i := len(b)
	for {
		i--
		b[i] = "0123456789abcdef"[n&15]
		n >>= 4
		if n == 0 {
			break
		}
	}
	w.Write(b[i:])
}

func writeInt(w *bufio.Writer, n int64) {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	w.Write(b[i:])
}
