package proxy

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Stream is one request on an h2ClientConn. It is the response's Body
// too. Its fields are guarded by cc.mu unless said otherwise.
type h2Stream struct {
	cc   *h2ClientConn
	id   uint32 // set before the stream is shared
	req  *http.Request
	cond sync.Cond // on cc.mu: headers, body bytes, window or failure arrived

	resp       *http.Response
	trailer    http.Header // received trailers, until Read reaches EOF
	err        error       // the stream failed; Read returns it once buf is drained
	buf        []byte      // received body bytes not yet read
	off        int
	ended      bool  // the peer's END_STREAM arrived
	sentEnd    bool  // our END_STREAM went (or will never go)
	sendWindow int32 // the peer's window for our DATA on this stream
	recvUnack  int   // bytes read, not yet credited back to the peer
	removed    bool  // gone from cc.streams

	// Set by roundTrip unless cleanup ran first (cleaned).
	stopCtx func() bool
	timer   *time.Timer
	cleaned bool
}

// fail ends the stream with err unless it already ended. reset is for an
// end on our side (the caller went away, closed the body, or timed out):
// unread bytes are dropped and RST_STREAM(CANCEL) tells the peer. Without
// it (the peer reset the stream, the connection died) the bytes already
// received are still read before the error, as net/http's Transport
// does, so a proxy passes on as much of a broken body as arrived.
func (s *h2Stream) fail(err error, reset bool) {
	cc := s.cc
	cc.mu.Lock()
	if s.err != nil {
		cc.mu.Unlock()
		return
	}
	// A stream both sides ended is not reset, but bytes nobody will read
	// still count in the connection's window: credit them back.
	clean := s.ended && s.sentEnd
	s.err = err
	if reset || clean {
		s.discardLocked()
	}
	s.sentEnd = true
	s.cond.Broadcast()
	cc.cond.Broadcast() // a body writer waiting for window
	s.removeLocked()
	cc.mu.Unlock()
	if reset && !clean {
		code := http2.ErrCodeCancel
		if se, ok := err.(http2.StreamError); ok {
			code = se.Code
		}
		cc.reset(s.id, code)
	}
	s.cleanup()
}

// timeout fails a stream still waiting for response headers with errTimeout.
func (s *h2Stream) timeout() {
	s.cc.mu.Lock()
	waiting := s.resp == nil && s.err == nil
	s.cc.mu.Unlock()
	if waiting {
		s.fail(errTimeout, true)
	}
}

// endLocked records the peer's END_STREAM. If our request body is still
// going, it stops there (the answer is complete, RFC 9113 §8.1) and the
// stream is reset so the server forgets it too. cc.mu held.
func (s *h2Stream) endLocked() {
	s.ended = true
	if !s.sentEnd {
		s.sentEnd = true
		go s.cc.reset(s.id, http2.ErrCodeCancel)
	}
	s.removeLocked()
}

// reset sends RST_STREAM for a stream we stop: CANCEL, or the code of the
// stream error that stopped it.
func (cc *h2ClientConn) reset(id uint32, code http2.ErrCode) {
	cc.wmu.Lock()
	err := cc.fr.WriteRSTStream(id, code)
	cc.wmu.Unlock()
	cc.writeErr(err)
}

// discardLocked drops unread body bytes and credits them to the connection.
func (s *h2Stream) discardLocked() {
	if n := len(s.buf) - s.off; n > 0 {
		s.cc.recvUnack += n
	}
	s.buf, s.off = nil, 0
}

// removeLocked takes the stream off the connection once both sides ended
// (or it failed), freeing its slot. cc.mu held.
func (s *h2Stream) removeLocked() {
	if s.removed || (s.err == nil && !(s.ended && s.sentEnd)) {
		return
	}
	s.removed = true
	cc := s.cc
	delete(cc.streams, s.id)
	if len(cc.streams) == 0 && cc.reserved == 0 {
		if cc.goAway {
			go cc.close(errH2Closed)
		} else if cc.idle != nil {
			cc.idle.Reset(h2IdleTimeout)
		}
	}
}

// cleanup releases what the stream held on to outside the connection:
// the context watch and the header timer (see roundTrip).
func (s *h2Stream) cleanup() {
	s.cc.mu.Lock()
	s.cleaned = true
	stop, timer := s.stopCtx, s.timer
	s.stopCtx, s.timer = nil, nil
	s.cc.mu.Unlock()
	stopAll(stop, timer)
}

func stopAll(stop func() bool, timer *time.Timer) {
	if stop != nil {
		stop()
	}
	if timer != nil {
		timer.Stop()
	}
}

// Read reads the response body. At EOF the trailers are in resp.Trailer.
func (s *h2Stream) Read(p []byte) (int, error) {
	cc := s.cc
	cc.mu.Lock()
	for s.off == len(s.buf) && s.err == nil && !s.ended {
		s.cond.Wait()
	}
	if s.off < len(s.buf) {
		n := copy(p, s.buf[s.off:])
		s.off += n
		if s.off == len(s.buf) {
			s.buf, s.off = s.buf[:0], 0
		}
		var streamCredit, connCredit int
		if !s.ended && s.err == nil {
			s.recvUnack += n
			if s.recvUnack >= h2StreamWindow/2 {
				streamCredit, s.recvUnack = s.recvUnack, 0
			}
		}
		cc.recvUnack += n
		if cc.recvUnack >= h2ConnWindow/2 {
			connCredit, cc.recvUnack = cc.recvUnack, 0
			cc.recvHeld -= connCredit
		}
		cc.mu.Unlock()
		if streamCredit > 0 || connCredit > 0 {
			cc.credit(s.id, streamCredit, connCredit)
		}
		return n, nil
	}
	err := s.err
	if err == nil {
		err = io.EOF
		if s.trailer != nil {
			if s.resp.Trailer == nil {
				s.resp.Trailer = make(http.Header, len(s.trailer))
			}
			for k, vv := range s.trailer {
				s.resp.Trailer[k] = vv
			}
			s.trailer = nil
		}
	}
	cc.mu.Unlock()
	if err == io.EOF {
		s.cleanup()
	}
	return 0, err
}

// Close ends the response: a stream still receiving is reset.
func (s *h2Stream) Close() error {
	s.fail(errH2BodyClosed, true)
	return nil
}

// credit sends WINDOW_UPDATEs for bytes the reader consumed.
func (cc *h2ClientConn) credit(id uint32, stream, conn int) {
	cc.wmu.Lock()
	var err error
	if stream > 0 {
		err = cc.fr.WriteWindowUpdate(id, uint32(stream))
	}
	if conn > 0 && err == nil {
		err = cc.fr.WriteWindowUpdate(0, uint32(conn))
	}
	cc.wmu.Unlock()
	cc.writeErr(err)
}

// writeBody copies body (the request's, as it was when the stream
// started) into DATA frames within the peer's windows, then ends the stream
// (with trailers if the request has any). It runs on its own goroutine and
// owns body. It is handed body rather than reading req.Body: after an
// unprocessed attempt the pool gives the request a fresh body for the next
// one while this goroutine may still be running.
func (s *h2Stream) writeBody(body io.ReadCloser) {
	cc := s.cc
	defer body.Close()
	buf := bodyBufs.Get().(*[bodyBufSize]byte)
	defer bodyBufs.Put(buf)
	for {
		n, rerr := body.Read(buf[:])
		data := buf[:n]
		for len(data) > 0 {
			cc.mu.Lock()
			for s.err == nil && cc.err == nil && !s.sentEnd && (s.sendWindow <= 0 || cc.sendWindow <= 0) {
				cc.cond.Wait()
			}
			if s.err != nil || cc.err != nil || s.sentEnd {
				cc.mu.Unlock()
				return
			}
			chunk := min(len(data), int(s.sendWindow), int(cc.sendWindow), cc.maxFrame)
			s.sendWindow -= int32(chunk)
			cc.sendWindow -= int32(chunk)
			cc.mu.Unlock()
			cc.wmu.Lock()
			err := cc.fr.WriteData(s.id, false, data[:chunk])
			cc.wmu.Unlock()
			if err != nil {
				cc.writeErr(err)
				return
			}
			data = data[chunk:]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			// The client's body broke off: the upstream must not take
			// what it got for a whole request.
			s.fail(fmt.Errorf("http2 request body: %w", rerr), true)
			return
		}
	}
	cc.mu.Lock()
	if s.err != nil || s.sentEnd {
		cc.mu.Unlock()
		return
	}
	maxFrame := cc.maxFrame
	cc.mu.Unlock()
	cc.wmu.Lock()
	var err error
	if len(s.req.Trailer) > 0 {
		cc.hbuf.Reset()
		for k, vv := range s.req.Trailer {
			name, ok := h2LowerHeader(k)
			if !ok {
				continue
			}
			for _, v := range vv {
				cc.henc.WriteField(hpack.HeaderField{Name: name, Value: v})
			}
		}
		err = writeH2HeaderBlock(cc.fr, s.id, true, cc.hbuf.Bytes(), maxFrame)
	} else {
		err = cc.fr.WriteData(s.id, true, nil)
	}
	cc.wmu.Unlock()
	if err != nil {
		cc.writeErr(err)
		return
	}
	cc.mu.Lock()
	s.sentEnd = true
	s.removeLocked()
	cc.mu.Unlock()
}

// bodyBufSize is one DATA frame at the default SETTINGS_MAX_FRAME_SIZE.
const bodyBufSize = 16 << 10

var bodyBufs = sync.Pool{New: func() any { return new([bodyBufSize]byte) }}

// readLoop reads the connection's frames until it fails; the only reader.
func (cc *h2ClientConn) readLoop() {
	defer close(cc.readerDone)
	for {
		f, err := cc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if s := cc.stream(se.StreamID); s != nil {
					s.fail(se, true)
				}
				continue
			}
			if errors.Is(err, http2.ErrFrameTooLarge) {
				cc.wmu.Lock()
				_ = cc.fr.WriteGoAway(0, http2.ErrCodeFrameSize, nil)
				cc.wmu.Unlock()
			}
			cc.close(fmt.Errorf("http2 to %s: read: %w", cc.addr, err))
			return
		}
		if err := cc.handle(f); err != nil {
			code := http2.ErrCodeProtocol
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				code = http2.ErrCode(ce) // FLOW_CONTROL_ERROR, say
			}
			cc.wmu.Lock()
			_ = cc.fr.WriteGoAway(0, code, nil)
			cc.wmu.Unlock()
			cc.close(fmt.Errorf("http2 to %s: %w", cc.addr, err))
			return
		}
	}
}

func (cc *h2ClientConn) stream(id uint32) *h2Stream {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.streams[id]
}

// handle acts on one frame; an error is the connection's end.
func (cc *h2ClientConn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return cc.onHeaders(f)
	case *http2.DataFrame:
		return cc.onData(f)
	case *http2.RSTStreamFrame:
		if s := cc.stream(f.StreamID); s != nil {
			err := error(http2.StreamError{StreamID: f.StreamID, Code: f.ErrCode})
			if f.ErrCode == http2.ErrCodeRefusedStream {
				err = errH2Unprocessed
			}
			s.fail(err, false)
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		if err := cc.onSettings(f); err != nil {
			return err
		}
		cc.wmu.Lock()
		err := cc.fr.WriteSettingsAck()
		cc.wmu.Unlock()
		cc.writeErr(err)
	case *http2.WindowUpdateFrame:
		cc.mu.Lock()
		if f.StreamID == 0 && !growWindow(&cc.sendWindow, f.Increment) {
			cc.mu.Unlock()
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		if s := cc.streams[f.StreamID]; s != nil && f.StreamID != 0 && !growWindow(&s.sendWindow, f.Increment) {
			cc.mu.Unlock()
			s.fail(http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}, true)
			return nil
		}
		cc.cond.Broadcast()
		cc.mu.Unlock()
	case *http2.PingFrame:
		if !f.IsAck() {
			cc.wmu.Lock()
			err := cc.fr.WritePing(true, f.Data)
			cc.wmu.Unlock()
			cc.writeErr(err)
		}
	case *http2.GoAwayFrame:
		// Streams past the last one the server will process were not
		// processed and may go again elsewhere; the rest finish here.
		cc.mu.Lock()
		cc.goAway = true
		var refused []*h2Stream
		for id, s := range cc.streams {
			if id > f.LastStreamID {
				refused = append(refused, s)
			}
		}
		idle := len(cc.streams) == len(refused) && cc.reserved == 0
		cc.mu.Unlock()
		cc.pool.remove(cc)
		for _, s := range refused {
			s.fail(errH2Unprocessed, false)
		}
		if idle {
			go cc.close(errH2Closed)
		}
	case *http2.PushPromiseFrame:
		return errors.New("PUSH_PROMISE though SETTINGS_ENABLE_PUSH is 0")
	}
	return nil
}

func (cc *h2ClientConn) onSettings(f *http2.SettingsFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return f.ForeachSetting(func(st http2.Setting) error {
		switch st.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams = int(min(st.Val, 1000))
		case http2.SettingMaxFrameSize:
			cc.maxFrame = int(st.Val)
		case http2.SettingInitialWindowSize:
			if st.Val > 1<<31-1 {
				return errors.New("SETTINGS_INITIAL_WINDOW_SIZE too large")
			}
			delta := int32(st.Val) - cc.initWindow
			cc.initWindow = int32(st.Val)
			for _, s := range cc.streams {
				if n := int64(s.sendWindow) + int64(delta); n > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl) // RFC 9113 §6.9.2
				}
				s.sendWindow += delta
			}
			cc.cond.Broadcast()
		case http2.SettingHeaderTableSize:
			// The encoder is the writers': take wmu after mu is released.
			v := st.Val
			go func() {
				cc.wmu.Lock()
				cc.henc.SetMaxDynamicTableSize(v)
				cc.wmu.Unlock()
			}()
		}
		return nil
	})
}

// onHeaders takes a response's headers or, after its body, its trailers.
func (cc *h2ClientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	s := cc.stream(f.StreamID)
	if s == nil {
		return nil // a stream we already reset
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if s.err != nil {
		return nil
	}
	if s.resp != nil {
		// Trailers: they end the stream.
		if !f.StreamEnded() {
			s.err = errors.New("http2: trailers without END_STREAM")
		} else {
			// Kept aside: the reader may be ranging over resp.Trailer
			// (writeResponse announces it) while this goroutine runs;
			// Read moves them in at EOF, on the reader's goroutine.
			s.trailer = h2Trailer(f.RegularFields())
			s.endLocked()
		}
		s.cond.Broadcast()
		s.removeLocked()
		return nil
	}
	status, err := strconv.Atoi(f.PseudoValue("status"))
	if err != nil || status < 100 || status > 999 {
		s.err = fmt.Errorf("http2: bad :status %q", f.PseudoValue("status"))
		s.sentEnd = true
		s.cond.Broadcast()
		s.removeLocked()
		return nil
	}
	if status < 200 {
		return nil // 1xx: the final response is still to come
	}
	h, trailer, _ := h2Header(f.RegularFields(), false)
	resp := &http.Response{
		Status:        statusLine(status),
		StatusCode:    status,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h,
		Trailer:       trailer,
		ContentLength: -1,
		Request:       s.req,
		Body:          s,
	}
	if f.StreamEnded() {
		s.endLocked()
		resp.ContentLength = 0
		resp.Body = http.NoBody
	} else if cl := h["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			resp.ContentLength = n
		}
	}
	s.resp = resp
	s.cond.Broadcast()
	if s.ended {
		// A body-less answer: nobody will call Read, so release now.
		go s.cleanup()
	}
	return nil
}

// onData queues a DATA frame's bytes for the stream's reader.
func (cc *h2ClientConn) onData(f *http2.DataFrame) error {
	cc.mu.Lock()
	// Every DATA frame uses the connection's window; more than we
	// granted is a connection error (RFC 9113 §6.9.1).
	cc.recvHeld += int(f.Length)
	if cc.recvHeld > h2ConnWindow {
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	s := cc.streams[f.StreamID]
	if s == nil || s.err != nil || s.resp == nil {
		// Reset or unknown: nobody reads it, but it used the window.
		cc.recvUnack += int(f.Length)
		cc.mu.Unlock()
		return nil
	}
	if pad := int(f.Length) - len(f.Data()); pad > 0 {
		cc.recvUnack += pad
		s.recvUnack += pad // credited to the stream with its next read
	}
	// The stream's window in use is what is buffered plus what was read
	// and not yet credited back.
	if len(s.buf)-s.off+s.recvUnack+len(f.Data()) > h2StreamWindow {
		// More than the stream's window: the server ignores flow
		// control. The bytes are credited to the connection and the
		// stream is reset rather than buffered without bound.
		cc.recvUnack += len(f.Data())
		cc.mu.Unlock()
		s.fail(http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}, true)
		return nil
	}
	defer cc.mu.Unlock()
	s.buf = append(s.buf, f.Data()...)
	if f.StreamEnded() {
		s.endLocked()
	}
	s.cond.Broadcast()
	return nil
}

// statusLine is Response.Status ("200 OK"); the common ones are not
// rebuilt per response.
func statusLine(code int) string {
	switch code {
	case 200:
		return "200 OK"
	case 204:
		return "204 No Content"
	case 404:
		return "404 Not Found"
	case 503:
		return "503 Service Unavailable"
	}
	return strconv.Itoa(code) + " " + http.StatusText(code)
}
