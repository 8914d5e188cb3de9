package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/causeway-mesh/causeway/spec"
)

// h2Pool is the client the proxy sends HTTP/2 and gRPC requests with (h2c
// with prior knowledge: an http2/grpc cluster port without a connection
// cap, and the inbound hop to a local h2c app). It speaks frames through
// x/net/http2's Framer and hpack and multiplexes every stream to an
// endpoint onto one connection until the peer's stream limit, then opens
// another.
//
// Why not net/http's Transport: for each request it starts a goroutine,
// builds a context tree, looks up a connection through its HTTP/1
// machinery, and writes the request's HEADERS with a system call of their
// own. Under h2load that was a fifth of the proxy's CPU (bench/results).
// Here a request without a body costs no goroutine: the caller encodes and
// writes its HEADERS, waits on a condition variable for the response,
// which the connection's one reader goroutine fills in, and reads the body
// from the bytes that goroutine queued. Writes go through a batchConn, so
// the HEADERS of many concurrent requests leave in one system call. A
// request with a body (gRPC) gets one goroutine that copies it out under
// the peer's flow control, since a bidirectional stream's request body can
// depend on its response.
//
// Semantics kept from the Transport: the route timeout bounds the wait for
// response headers only (the deadline argument, as the h1 client takes
// it); the request's context cancels the stream (RST_STREAM CANCEL) at any
// point, and closing the response body early does too; trailers are set in
// resp.Trailer when the body reaches EOF (announced ones pre-keyed, as
// net/http does, so writeResponse can tell them apart); a request the
// server refused unprocessed (GOAWAY past it, REFUSED_STREAM) or that met
// a dead pooled connection before any byte of it was written is sent again
// on a fresh connection when its body can be replayed.
//
// Goroutines: one reader per connection (readLoop), which owns the
// Framer's read side; writers hold wmu, which owns the Framer's write side
// and the hpack encoder; everything else of a connection and its streams
// is guarded by its mu. A connection idle for h2IdleTimeout is closed.
type h2Pool struct {
	dial func(context.Context, string, string) (net.Conn, error)

	mu      sync.Mutex
	conns   map[string][]*h2ClientConn // by endpoint address
	dialing map[string]*h2Dial
}

type h2Dial struct {
	done chan struct{}
	cc   *h2ClientConn
	err  error
}

const (
	// h2StreamWindow and h2ConnWindow are the receive windows we grant,
	// net/http's Transport's values: large enough that a gRPC stream or
	// download is never throttled by us on loopback.
	h2StreamWindow = 4 << 20
	h2ConnWindow   = 1 << 30
	// h2MaxHeaderList bounds a response's decoded header block.
	h2MaxHeaderList = 10 << 20
	// h2IdleTimeout closes a connection without streams, as the
	// Transport's IdleConnTimeout does.
	h2IdleTimeout = 90 * time.Second
	// h2DefaultMaxStreams is assumed until the peer's SETTINGS say.
	h2DefaultMaxStreams = 100
)

var (
	errH2Closed = errors.New("http2: client connection closed")
	// errH2Unprocessed: the server did not process the stream (it said
	// so with GOAWAY or REFUSED_STREAM), so sending it again is safe.
	errH2Unprocessed = errors.New("http2: stream not processed by the server")
	errH2BodyClosed  = errors.New("http2: response body closed")
)

func newH2Pool(dial func(context.Context, string, string) (net.Conn, error)) *h2Pool {
	return &h2Pool{dial: dial, conns: map[string][]*h2ClientConn{}, dialing: map[string]*h2Dial{}}
}

// RoundTrip makes the pool an http.RoundTripper (no header deadline).
func (p *h2Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	return p.roundTrip(req, time.Time{})
}

// roundTrip sends req to req.URL.Host. A non-zero deadline bounds the wait
// for response headers: past it the stream is reset and errTimeout returned.
func (p *h2Pool) roundTrip(req *http.Request, deadline time.Time) (*http.Response, error) {
	addr := req.URL.Host
	for try := 0; ; try++ {
		cc, err := p.get(req.Context(), addr)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err := cc.roundTrip(req, deadline)
		if err == nil {
			return resp, nil
		}
		replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		if !errors.Is(err, errH2Unprocessed) || !replayable || try >= 2 || req.Context().Err() != nil {
			closeBody(req) // a RoundTripper closes the body, whatever happened
			return nil, err
		}
		if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
			req.Body.Close()
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// get returns a connection to addr with a free stream, dialling one (once,
// however many callers wait for it) when none has.
func (p *h2Pool) get(ctx context.Context, addr string) (*h2ClientConn, error) {
	for {
		p.mu.Lock()
		for _, cc := range p.conns[addr] {
			if cc.reserve() {
				p.mu.Unlock()
				return cc, nil
			}
		}
		d := p.dialing[addr]
		if d == nil {
			d = &h2Dial{done: make(chan struct{})}
			p.dialing[addr] = d
			p.mu.Unlock()
			d.cc, d.err = p.connect(ctx, addr)
			p.mu.Lock()
			delete(p.dialing, addr)
			if d.err == nil {
				p.conns[addr] = append(p.conns[addr], d.cc)
			}
			close(d.done)
			p.mu.Unlock()
			if d.err != nil {
				return nil, d.err
			}
			continue
		}
		p.mu.Unlock()
		select {
		case <-d.done:
			if d.err != nil {
				return nil, d.err
			}
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// remove forgets a connection that can take no new streams.
func (p *h2Pool) remove(cc *h2ClientConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.conns[cc.addr]
	for i, c := range list {
		if c == cc {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.conns, cc.addr)
	} else {
		p.conns[cc.addr] = list
	}
}

// closeIdle closes the connections without streams and lets the others
// finish theirs first, as Transport.CloseIdleConnections does: a config
// swap drops a cluster port while requests that resolved it are still on
// their way. A request after this dials afresh.
func (p *h2Pool) closeIdle() {
	p.mu.Lock()
	var all []*h2ClientConn
	for _, list := range p.conns {
		all = append(all, list...)
	}
	p.conns = map[string][]*h2ClientConn{}
	p.mu.Unlock()
	for _, cc := range all {
		cc.drain()
	}
}

// connect dials addr and starts HTTP/2 on it: preface, our SETTINGS and the
// connection window, all before the first request (prior knowledge needs
// no round trip).
func (p *h2Pool) connect(ctx context.Context, addr string) (*h2ClientConn, error) {
	raw, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	bc := newBatchConn(raw)
	cc := &h2ClientConn{
		pool:       p,
		addr:       addr,
		conn:       bc,
		streams:    map[uint32]*h2Stream{},
		nextID:     1,
		maxStreams: h2DefaultMaxStreams,
		sendWindow: 65535,
		initWindow: 65535,
		maxFrame:   16384,
		readerDone: make(chan struct{}),
	}
	cc.cond.L = &cc.mu
	cc.fr = http2.NewFramer(bc, bufio.NewReaderSize(raw, 32<<10))
	cc.fr.SetMaxReadFrameSize(h2DefaultFrameSize) // as the server: we advertise no larger size
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = h2MaxHeaderList
	cc.fr.SetReuseFrames()
	cc.henc = hpack.NewEncoder(&cc.hbuf)
	cc.wmu.Lock()
	_, err = bc.Write([]byte(http2.ClientPreface))
	if err == nil {
		err = cc.fr.WriteSettings(
			http2.Setting{ID: http2.SettingEnablePush, Val: 0},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderList},
		)
	}
	if err == nil {
		err = cc.fr.WriteWindowUpdate(0, h2ConnWindow-65535)
	}
	cc.wmu.Unlock()
	if err != nil {
		bc.Close()
		return nil, fmt.Errorf("http2 to %s: start: %w", addr, err)
	}
	cc.idle = time.AfterFunc(h2IdleTimeout, cc.closeIfIdle)
	go cc.readLoop()
	return cc, nil
}

// h2ClientConn is one HTTP/2 connection to an endpoint.
type h2ClientConn struct {
	pool *h2Pool
	addr string
	conn *batchConn

	// wmu owns the Framer's write side, the hpack encoder and the order
	// of new stream IDs on the wire.
	wmu  sync.Mutex
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	mu         sync.Mutex
	cond       sync.Cond // send window grew, or the connection failed
	streams    map[uint32]*h2Stream
	reserved   int // streams promised by reserve, not yet opened
	nextID     uint32
	maxStreams int
	sendWindow int32 // connection-level, for our DATA
	initWindow int32 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame   int   // the peer's SETTINGS_MAX_FRAME_SIZE
	recvUnack  int   // connection-level bytes consumed, not yet credited
	recvHeld   int   // connection window the server has used and we have not credited back
	goAway     bool  // no new streams (GOAWAY received, or closing)
	err        error // the connection failed; set once
	idle       *time.Timer
	readerDone chan struct{}
}

// reserve claims a stream slot if the connection can take one. Called
// with the pool's mu held.
func (cc *h2ClientConn) reserve() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.goAway || cc.err != nil || len(cc.streams)+cc.reserved >= cc.maxStreams || cc.nextID >= 1<<31-1 {
		return false
	}
	cc.reserved++
	return true
}

// drain takes no new streams and closes once the last one ends.
func (cc *h2ClientConn) drain() {
	cc.mu.Lock()
	cc.goAway = true
	idle := len(cc.streams) == 0 && cc.reserved == 0
	cc.mu.Unlock()
	if idle {
		cc.close(errH2Closed)
	}
}

func (cc *h2ClientConn) closeIfIdle() {
	cc.mu.Lock()
	idle := len(cc.streams) == 0 && cc.reserved == 0
	cc.mu.Unlock()
	if idle {
		cc.close(errH2Closed)
	} else {
		cc.idle.Reset(h2IdleTimeout)
	}
}

// close fails the connection and every stream on it.
func (cc *h2ClientConn) close(err error) {
	cc.mu.Lock()
	if cc.err == nil {
		cc.err = err
		cc.goAway = true
	}
	streams := make([]*h2Stream, 0, len(cc.streams))
	for _, s := range cc.streams {
		streams = append(streams, s)
	}
	cc.cond.Broadcast()
	cc.mu.Unlock()
	for _, s := range streams {
		s.fail(err, false)
	}
	cc.pool.remove(cc)
	cc.idle.Stop()
	cc.conn.Close()
}

// writeErr ends the connection when a write failed: the peer's view of it
// is unknown.
func (cc *h2ClientConn) writeErr(err error) {
	if err != nil {
		go cc.close(fmt.Errorf("http2 to %s: write: %w", cc.addr, err))
	}
}

// roundTrip opens a stream on cc (a slot reserved by reserve) for req.
func (cc *h2ClientConn) roundTrip(req *http.Request, deadline time.Time) (*http.Response, error) {
	hasBody := req.Body != nil && req.Body != http.NoBody
	s := &h2Stream{cc: cc, req: req}
	s.cond.L = &cc.mu

	cc.wmu.Lock()
	cc.mu.Lock()
	cc.reserved--
	if cc.err != nil || cc.goAway {
		idle := cc.err == nil && len(cc.streams) == 0 && cc.reserved == 0
		cc.mu.Unlock()
		cc.wmu.Unlock()
		if idle {
			cc.close(errH2Closed) // drained while we held its last slot
		}
		return nil, errH2Unprocessed // nothing of it was written
	}
	s.id = cc.nextID
	cc.nextID += 2
	s.sendWindow = cc.initWindow
	s.sentEnd = !hasBody
	cc.streams[s.id] = s
	maxFrame := cc.maxFrame
	cc.mu.Unlock()
	err := cc.writeRequestHeaders(req, s.id, !hasBody, maxFrame)
	cc.wmu.Unlock()
	if err != nil {
		cc.writeErr(err)
		s.fail(errH2Unprocessed, false)
		return nil, errH2Unprocessed
	}

	// The caller's context may end the stream at any time, the route
	// timeout only until the response headers arrive. The reader may
	// have finished the stream already: then cleanup has run and these
	// are stopped at once.
	var stop func() bool
	var timer *time.Timer
	if ctx := req.Context(); ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { s.fail(context.Cause(ctx), true) })
	}
	if !deadline.IsZero() {
		timer = time.AfterFunc(time.Until(deadline), func() { s.timeout() })
	}
	cc.mu.Lock()
	cleaned := s.cleaned
	if !cleaned {
		s.stopCtx, s.timer = stop, timer
	}
	cc.mu.Unlock()
	if cleaned {
		stopAll(stop, timer)
	}
	if hasBody {
		go s.writeBody(req.Body)
	}

	cc.mu.Lock()
	for s.resp == nil && s.err == nil {
		s.cond.Wait()
	}
	resp, err := s.resp, s.err
	cc.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if resp == nil {
		return nil, err
	}
	return resp, nil
}

// writeRequestHeaders encodes req's header block and writes it as HEADERS
// and, past the peer's frame size, CONTINUATION frames. wmu held.
func (cc *h2ClientConn) writeRequestHeaders(req *http.Request, id uint32, endStream bool, maxFrame int) error {
	cc.hbuf.Reset()
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	path := req.URL.RequestURI()
	enc := func(name, value string) { cc.henc.WriteField(hpack.HeaderField{Name: name, Value: value}) }
	enc(":authority", host)
	enc(":method", req.Method)
	enc(":path", path)
	enc(":scheme", "http")
	for k, vv := range req.Header {
		name, ok := h2LowerHeader(k)
		if !ok {
			continue
		}
		switch name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length":
			continue // connection-specific (RFC 9113 §8.2.2), or set below
		case "te":
			// Only "trailers" may cross (gRPC needs it).
			for _, v := range vv {
				if strings.Contains(v, "trailers") {
					enc("te", "trailers")
					break
				}
			}
			continue
		case "user-agent":
			// prepareOutbound sets an empty one to mean "none".
			if len(vv) == 0 || vv[0] == "" {
				continue
			}
			vv = vv[:1]
		}
		for _, v := range vv {
			enc(name, v)
		}
	}
	if req.ContentLength > 0 {
		enc("content-length", strconv.FormatInt(req.ContentLength, 10))
	}
	if len(req.Trailer) > 0 {
		keys := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			keys = append(keys, strings.ToLower(k))
		}
		enc("trailer", strings.Join(keys, ","))
	}
	return writeH2HeaderBlock(cc.fr, id, endStream, cc.hbuf.Bytes(), maxFrame)
}

// writeH2HeaderBlock writes an encoded header block as HEADERS plus as many
// CONTINUATION frames as maxFrame needs; the client and the server both
// send theirs this way, holding their write lock.
func writeH2HeaderBlock(fr *http2.Framer, id uint32, endStream bool, block []byte, maxFrame int) error {
	first := block
	if len(first) > maxFrame {
		first = first[:maxFrame]
	}
	block = block[len(first):]
	err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		chunk := block
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		block = block[len(chunk):]
		err = fr.WriteContinuation(id, len(block) == 0, chunk)
	}
	return err
}

// h2LowerHeader gives a header's HTTP/2 name (lower case); false for a
// name HTTP/2 cannot carry. The common ones come from a table, so the hot
// path does not allocate.
func h2LowerHeader(k string) (string, bool) {
	if v, ok := h2CommonLower[k]; ok {
		return v, true
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c >= 0x80 || c <= ' ' || c == ':' {
			return "", false
		}
	}
	return strings.ToLower(k), true
}

var h2CommonLower = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Language",
		"Content-Length", "Content-Type", "Cookie", "Date", "Etag", "Expect", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "Keep-Alive", "Origin", "Proxy-Connection",
		"Referer", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "Via",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "X-Forwarded-Client-Cert",
		"Grpc-Timeout", "Grpc-Encoding", "Grpc-Accept-Encoding", "Grpc-Message-Type", "Grpc-Status",
		"Grpc-Message", "Causeway-Retryable", "Traceparent", "Tracestate",
	} {
		m[k] = strings.ToLower(k)
	}
	return m
}()

// closeH2 lets an HTTP/2 cluster port's connections go (see closeIdle).
func closeH2(cp *clusterPort) {
	if p, ok := cp.rt.(*h2Pool); ok {
		p.closeIdle()
	}
}

// useH2 sends an http2/grpc cluster port's requests through an h2Pool
// instead of net/http's Transport. Called right after newClusterPort,
// before any request can see cp. A port capped by maxConnsPerHost keeps
// the Transport, which queues streams for a connection slot.
func useH2(cp *clusterPort, pol Policy) {
	if cp.transport != nil && cp.h1 == nil && cp.key.Proto != spec.ProtocolHTTP && pol.MaxConnsPerHost <= 0 {
		cp.rt = newH2Pool(cp.dial)
	}
}
