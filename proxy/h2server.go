package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The HTTP/2 server below takes the h2c prior-knowledge connections of
// http2 and grpc ports (fixed, transparent and inbound) and runs the same
// handlers (serveFixed, serveInbound) on them that net/http's server does.
//
// Why: with the h2c client in place, net/http's HTTP/2 server was half of
// the proxy's CPU under h2load. Its serve loop owns all connection state,
// so every frame a handler writes is a message to that loop and back
// (channels and selects), and each flush of the loop's writer is a
// goroutine of its own. Here a handler writes its frames itself under the
// connection's write lock, into a batchConn; small answers leave as one
// HEADERS and one DATA frame with END_STREAM, or a single HEADERS frame.
// Streams still get a goroutine each (handlers block on upstreams).
//
// What it does not take: a connection that does not open with the HTTP/2
// preface goes, with the bytes read, to net/http's server as before
// (HTTP/1.1 on an http2 port). Within HTTP/2 it keeps to what a sidecar
// needs: no server push, no priorities (ignored), CONNECT refused with
// RST_STREAM. Flow control, SETTINGS, PING, GOAWAY, trailers both ways,
// RST_STREAM both ways and a 5-minute idle timeout behave as net/http's.
//
// Goroutines: serveH2Conn runs the reader on the goroutine that accepted
// the connection (counted in Proxy.wg); each stream's handler runs on its
// own, counted in the connection's wg, which the reader waits for before
// it closes the connection. Writers hold wmu (Framer write side, hpack
// encoder); stream and window state is under mu.

const (
	h2SrvMaxStreams   = 250     // net/http's default
	h2SrvStreamWindow = 1 << 20 // net/http's MaxUploadBufferPerStream
	h2SrvConnWindow   = 16 << 20
	h2SrvIdleTimeout  = 5 * time.Minute // the http.Servers' IdleTimeout
	h2PrefaceTimeout  = 30 * time.Second
	h2SrvHeaderList   = 1 << 20 // net/http's DefaultMaxHeaderBytes
)

// h2Servers tracks the HTTP/2 connections being served, for Close.
type h2Servers struct {
	mu      sync.Mutex
	conns   map[*h2ServerConn]struct{}
	pending map[net.Conn]struct{} // still reading the preface
	closing bool
	workers streamWorkers
}

// begin registers a connection whose preface is being read; false when
// the proxy is closing.
func (hs *h2Servers) begin(c net.Conn) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closing {
		return false
	}
	if hs.pending == nil {
		hs.pending = map[net.Conn]struct{}{}
		hs.conns = map[*h2ServerConn]struct{}{}
	}
	hs.pending[c] = struct{}{}
	return true
}

// shutdown sends GOAWAY on every connection and waits (until ctx ends) for
// their streams; then closes them.
func (hs *h2Servers) shutdown(ctx context.Context) {
	hs.mu.Lock()
	hs.closing = true
	for c := range hs.pending {
		c.Close()
	}
	conns := make([]*h2ServerConn, 0, len(hs.conns))
	for sc := range hs.conns {
		conns = append(conns, sc)
	}
	hs.mu.Unlock()
	for _, sc := range conns {
		sc.goAway()
	}
	for _, sc := range conns {
		select {
		case <-sc.done:
		case <-ctx.Done():
			sc.conn.Close()
			<-sc.done // its handlers have returned
		}
	}
}

// stopWorkers ends the stream workers, once no connection can start a
// stream (Proxy.Close, after every serving goroutine returned).
func (hs *h2Servers) stopWorkers() { hs.workers.stop() }

// serveHTTPFamily serves a connection of an http2/grpc port: HTTP/2 here
// when it opens with the preface, else net/http's server through cl. tag
// goes into the request context under key (what serveFixed and
// serveInbound look up). It owns c and runs on the caller's goroutine.
func (p *Proxy) serveHTTPFamily(c net.Conn, cl *chanListener, key, tag any, h http.HandlerFunc) {
	if !p.h2s.begin(c) {
		c.Close()
		return
	}
	var pre [len(http2.ClientPreface)]byte
	_ = c.SetReadDeadline(time.Now().Add(h2PrefaceTimeout))
	n, err := io.ReadFull(c, pre[:])
	_ = c.SetReadDeadline(time.Time{})
	p.h2s.mu.Lock()
	delete(p.h2s.pending, c)
	closing := p.h2s.closing
	p.h2s.mu.Unlock()
	if closing {
		c.Close()
		return
	}
	if err != nil || string(pre[:]) != http2.ClientPreface {
		if n == 0 && err != nil {
			c.Close()
			return
		}
		// Not HTTP/2 prior knowledge: net/http gets it with the bytes read.
		c = &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(pre[:n]), c)}
		if !cl.push(&taggedConn{Conn: c, tag: tag}) {
			c.Close()
		}
		return
	}
	sc := &h2ServerConn{
		p:          p,
		raw:        c,
		conn:       newBatchConn(c),
		handler:    h,
		ctx:        context.WithValue(context.Background(), key, tag),
		remote:     c.RemoteAddr().String(),
		streams:    map[uint32]*h2ServerStream{},
		sendWindow: 65535,
		initWindow: 65535,
		maxFrame:   16384,
		done:       make(chan struct{}),
	}
	sc.cond.L = &sc.mu
	p.h2s.mu.Lock()
	if p.h2s.closing {
		p.h2s.mu.Unlock()
		c.Close()
		return
	}
	p.h2s.conns[sc] = struct{}{}
	p.h2s.mu.Unlock()
	sc.serve()
	p.h2s.mu.Lock()
	delete(p.h2s.conns, sc)
	p.h2s.mu.Unlock()
}

// h2ServerConn is one client's HTTP/2 connection.
type h2ServerConn struct {
	p       *Proxy
	raw     net.Conn
	conn    *batchConn
	handler http.HandlerFunc
	ctx     context.Context
	remote  string
	done    chan struct{} // closed when serve returns
	wg      sync.WaitGroup

	wmu  sync.Mutex
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer

	mu         sync.Mutex
	cond       sync.Cond // a send window grew, or the connection ended
	streams    map[uint32]*h2ServerStream
	maxID      uint32 // highest stream the client opened
	sendWindow int32
	initWindow int32
	maxFrame   int
	recvUnack  int  // connection window consumed, not yet credited
	recvHeld   int  // connection window the client has used and we have not credited back
	closed     bool // reader ended: no more writes
	goneAway   bool
	idle       *time.Timer
}

// serve reads frames until the connection ends, then waits for the
// handlers and closes it.
func (sc *h2ServerConn) serve() {
	defer close(sc.done)
	sc.fr = http2.NewFramer(sc.conn, bufio.NewReaderSize(sc.raw, 16<<10))
	// We advertise no SETTINGS_MAX_FRAME_SIZE, so the default (16 KiB)
	// holds: a longer frame is a FRAME_SIZE_ERROR (RFC 9113 §4.2), found
	// from its header, before the Framer allocates a buffer for the
	// length it claims (up to 16 MiB otherwise).
	sc.fr.SetMaxReadFrameSize(h2DefaultFrameSize)
	sc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	sc.fr.MaxHeaderListSize = h2SrvHeaderList
	sc.fr.SetReuseFrames()
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	sc.wmu.Lock()
	err := sc.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2SrvMaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2SrvStreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2SrvHeaderList},
	)
	if err == nil {
		err = sc.fr.WriteWindowUpdate(0, h2SrvConnWindow-65535)
	}
	sc.wmu.Unlock()
	sc.idle = time.AfterFunc(h2SrvIdleTimeout, sc.closeIfIdle)
	for err == nil {
		var f http2.Frame
		f, err = sc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.resetStream(se.StreamID, se.Code)
				err = nil
			}
			if errors.Is(err, http2.ErrFrameTooLarge) {
				err = http2.ConnectionError(http2.ErrCodeFrameSize) // told to the client in GOAWAY
			}
			continue
		}
		err = sc.handle(f)
	}
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		sc.wmu.Lock()
		_ = sc.fr.WriteGoAway(sc.lastID(), http2.ErrCode(ce), nil)
		sc.wmu.Unlock()
	}
	sc.mu.Lock()
	sc.closed = true
	// Stopped under mu once closed is set, so a stream ending later does
	// not re-arm it: an armed timer would keep the whole connection
	// (buffers, framer) reachable for h2SrvIdleTimeout after it closed.
	sc.idle.Stop()
	streams := make([]*h2ServerStream, 0, len(sc.streams))
	for _, s := range sc.streams {
		streams = append(streams, s)
	}
	sc.cond.Broadcast()
	sc.mu.Unlock()
	for _, s := range streams {
		s.abort(errH2Closed)
	}
	sc.wg.Wait()
	sc.conn.Close()
}

func (sc *h2ServerConn) lastID() uint32 {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.maxID
}

// goAway stops new streams; the connection closes when the last ends.
func (sc *h2ServerConn) goAway() {
	sc.mu.Lock()
	if sc.goneAway || sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.goneAway = true
	idle := len(sc.streams) == 0
	last := sc.maxID
	sc.mu.Unlock()
	sc.wmu.Lock()
	_ = sc.fr.WriteGoAway(last, http2.ErrCodeNo, nil)
	sc.wmu.Unlock()
	if idle {
		sc.raw.Close() // ends the reader
	}
}

func (sc *h2ServerConn) closeIfIdle() {
	sc.mu.Lock()
	closed, idle := sc.closed, len(sc.streams) == 0
	if !closed && !idle {
		sc.idle.Reset(h2SrvIdleTimeout) // under mu: see serve's Stop
	}
	sc.mu.Unlock()
	if !closed && idle {
		sc.goAway()
	}
}

// write runs fn with the Framer's write side; false once the connection
// failed.
func (sc *h2ServerConn) write(fn func(fr *http2.Framer) error) bool {
	sc.wmu.Lock()
	err := fn(sc.fr)
	sc.wmu.Unlock()
	if err != nil {
		sc.raw.Close() // the reader ends and cleans up
		return false
	}
	return true
}

func (sc *h2ServerConn) resetStream(id uint32, code http2.ErrCode) {
	sc.mu.Lock()
	s := sc.streams[id]
	sc.mu.Unlock()
	if s != nil {
		s.abort(http2.StreamError{StreamID: id, Code: code})
	}
	sc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

// handle acts on one frame; an error ends the connection.
func (sc *h2ServerConn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return sc.onHeaders(f)
	case *http2.DataFrame:
		return sc.onData(f)
	case *http2.RSTStreamFrame:
		sc.mu.Lock()
		s := sc.streams[f.StreamID]
		sc.mu.Unlock()
		if s != nil {
			s.abort(http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := sc.onSettings(f); err != nil {
			return err
		}
		sc.write(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
	case *http2.WindowUpdateFrame:
		sc.mu.Lock()
		if f.StreamID == 0 {
			if !growWindow(&sc.sendWindow, f.Increment) {
				sc.mu.Unlock()
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
		} else if s := sc.streams[f.StreamID]; s != nil && !growWindow(&s.sendWindow, f.Increment) {
			sc.mu.Unlock()
			sc.resetStream(f.StreamID, http2.ErrCodeFlowControl)
			return nil
		}
		sc.cond.Broadcast()
		sc.mu.Unlock()
	case *http2.PingFrame:
		if !f.IsAck() {
			data := f.Data
			sc.write(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
		}
	case *http2.GoAwayFrame:
		sc.goAway()
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil
}

func (sc *h2ServerConn) onSettings(f *http2.SettingsFrame) error {
	var tableSize *uint32
	sc.mu.Lock()
	err := f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingMaxFrameSize:
			sc.maxFrame = int(st.Val)
		case http2.SettingInitialWindowSize:
			if st.Val > 1<<31-1 {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
			delta := int32(st.Val) - sc.initWindow
			sc.initWindow = int32(st.Val)
			for _, s := range sc.streams {
				if n := int64(s.sendWindow) + int64(delta); n > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl) // RFC 9113 §6.9.2
				}
				s.sendWindow += delta
			}
			sc.cond.Broadcast()
		case http2.SettingHeaderTableSize:
			v := st.Val
			tableSize = &v
		}
		return nil
	})
	sc.mu.Unlock()
	if tableSize != nil {
		sc.wmu.Lock()
		sc.henc.SetMaxDynamicTableSize(*tableSize)
		sc.wmu.Unlock()
	}
	return err
}

// onHeaders opens a stream and starts its handler, or takes a request's
// trailers.
func (sc *h2ServerConn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	sc.mu.Lock()
	if s := sc.streams[id]; s != nil {
		sc.mu.Unlock()
		return s.onTrailers(f)
	}
	if id%2 == 0 {
		sc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if id <= sc.maxID {
		// A stream we already finished (its handler returned and we
		// reset it, say, while the client's trailers were on their way):
		// that stream's error only, not the connection's.
		sc.mu.Unlock()
		sc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeStreamClosed) })
		return nil
	}
	sc.maxID = id
	if sc.goneAway || len(sc.streams) >= h2SrvMaxStreams {
		sc.mu.Unlock()
		sc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeRefusedStream) })
		return nil
	}
	sc.mu.Unlock()
	req, err := sc.newRequest(f)
	if err != nil {
		sc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, http2.ErrCodeProtocol) })
		return nil
	}
	s := &h2ServerStream{sc: sc, id: id, reqEnded: f.StreamEnded()}
	s.cnd.L = &sc.mu
	s.body.s = s
	s.ctx, s.cancel = context.WithCancel(sc.ctx)
	req.Body = http.NoBody
	if !s.reqEnded {
		req.Body = &s.body
	}
	s.req = req.WithContext(s.ctx)
	sc.mu.Lock()
	s.sendWindow = sc.initWindow
	sc.streams[id] = s
	sc.mu.Unlock()
	if !s.reqEnded && strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// Go's client, for one, waits a second for this before it sends
		// the body; the upstream never sees the Expect (it is not ours to
		// forward: the sidecar takes the body either way).
		req.Header.Del("Expect")
		sc.write(func(fr *http2.Framer) error {
			sc.hbuf.Reset()
			sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
			return writeH2HeaderBlock(sc.fr, id, false, sc.hbuf.Bytes(), 16384)
		})
	}
	sc.wg.Add(1)
	sc.p.h2s.workers.run(s)
	return nil
}

// newRequest builds the handler's request from a HEADERS frame.
func (sc *h2ServerConn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, error) {
	var method, path, authority, scheme string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":path":
			path = hf.Value
		case ":authority":
			authority = hf.Value
		case ":scheme":
			scheme = hf.Value
		}
	}
	if method == "" || method == http.MethodConnect || path == "" || scheme == "" || f.Truncated {
		return nil, errors.New("http2: bad request pseudo-headers")
	}
	u, err := url.ParseRequestURI(path)
	if err != nil {
		return nil, err
	}
	h, trailer, host := h2Header(f.RegularFields(), true)
	if authority == "" {
		authority = host
	}
	cl := int64(-1)
	if f.StreamEnded() {
		cl = 0
	} else if v := h["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	return &http.Request{
		Method:        method,
		URL:           u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h,
		ContentLength: cl,
		Host:          authority,
		Trailer:       trailer,
		RemoteAddr:    sc.remote,
		RequestURI:    path,
	}, nil
}

// onData queues a request DATA frame for the stream's body.
func (sc *h2ServerConn) onData(f *http2.DataFrame) error {
	sc.mu.Lock()
	// Every DATA frame, padding included, uses the connection's window
	// (RFC 9113 §6.9.1). More than we granted is a connection error:
	// buffering it would let a client that ignores flow control take
	// our memory.
	sc.recvHeld += int(f.Length)
	if sc.recvHeld > h2SrvConnWindow {
		sc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	s := sc.streams[f.StreamID]
	if s == nil || s.reqEnded || s.bodyClosed {
		// Nobody reads it, but it used the connection's window.
		sc.recvUnack += int(f.Length)
		credit := sc.takeConnCreditLocked()
		sc.mu.Unlock()
		sc.credit(0, 0, credit)
		if s == nil && f.StreamID > sc.lastID() {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil
	}
	if pad := int(f.Length) - len(f.Data()); pad > 0 {
		sc.recvUnack += pad
		s.recvUnack += pad // credited to the stream with its next read
	}
	// The stream's window in use is what is buffered plus what was read
	// and not yet credited back.
	if len(s.buf)-s.off+s.recvUnack+len(f.Data()) > h2SrvStreamWindow {
		// More than the window we granted: the client ignores flow
		// control, and buffering it would let one stream take our memory.
		// The bytes still count in the connection's window: credit them.
		sc.recvUnack += len(f.Data())
		credit := sc.takeConnCreditLocked()
		sc.mu.Unlock()
		sc.credit(0, 0, credit)
		sc.resetStream(f.StreamID, http2.ErrCodeFlowControl)
		return nil
	}
	s.buf = append(s.buf, f.Data()...)
	if f.StreamEnded() {
		s.reqEnded = true
		s.removeLocked()
	}
	s.cond().Broadcast()
	sc.mu.Unlock()
	return nil
}

func (sc *h2ServerConn) takeConnCreditLocked() int {
	if sc.recvUnack >= h2SrvConnWindow/2 {
		n := sc.recvUnack
		sc.recvUnack = 0
		sc.recvHeld -= n
		return n
	}
	return 0
}

// credit sends WINDOW_UPDATEs for consumed request bytes.
func (sc *h2ServerConn) credit(id uint32, stream, conn int) {
	if stream == 0 && conn == 0 {
		return
	}
	sc.write(func(fr *http2.Framer) error {
		if stream > 0 {
			if err := fr.WriteWindowUpdate(id, uint32(stream)); err != nil {
				return err
			}
		}
		if conn > 0 {
			return fr.WriteWindowUpdate(0, uint32(conn))
		}
		return nil
	})
}
