package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2ServerStream is one request on an h2ServerConn: the handler's
// http.ResponseWriter (and Flusher), and through body its request body.
type h2ServerStream struct {
	sc     *h2ServerConn
	id     uint32
	req    *http.Request
	ctx    context.Context
	cancel context.CancelFunc
	body   h2ReqBody
	cnd    sync.Cond // on sc.mu: request bytes arrived, or the stream ended

	// Guarded by sc.mu.
	buf         []byte // request body bytes not yet read
	off         int
	reqEnded    bool        // the client's END_STREAM arrived (or we stopped listening)
	bodyClosed  bool        // the handler closed the body
	reqTrailer  http.Header // until Read reaches EOF
	recvUnack   int
	sendWindow  int32
	err         error // the stream was reset either way, or the connection ended
	handlerDone bool
	removed     bool

	// The handler's goroutine only.
	hdr         http.Header
	status      int
	fields      []hpack.HeaderField // the header block, fixed at WriteHeader
	trailerKeys []string            // announced in Trailer at WriteHeader
	sentHeader  bool
	out         []byte // body bytes held back so a small answer leaves in one go
}

// h2OutHold is how much body a stream holds back before its first send:
// enough for a typical answer to leave with its headers and END_STREAM.
const h2OutHold = 16 << 10

func (s *h2ServerStream) cond() *sync.Cond { return &s.cnd }

// run calls the handler and ends the stream as it returns or panics.
func (s *h2ServerStream) run() {
	sc := s.sc
	defer sc.wg.Done()
	ok := false
	defer func() {
		if !ok {
			if e := recover(); e != nil && e != http.ErrAbortHandler {
				sc.p.errLog.Printf("http2: panic serving %s: %v", sc.remote, e)
			}
			// A cut answer: the client must not take it for a whole one.
			if s.abort(errors.New("http2: handler aborted")) {
				sc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(s.id, http2.ErrCodeInternal) })
			}
		}
		s.exit()
	}()
	sc.handler(s, s.req)
	s.finish()
	ok = true
}

// exit records the handler's end. A request body still arriving is not
// wanted any more: RST_STREAM(NO_ERROR) says so (RFC 9113 §8.1).
func (s *h2ServerStream) exit() {
	sc := s.sc
	sc.mu.Lock()
	s.handlerDone = true
	rst := false
	if !s.reqEnded && s.err == nil {
		rst = true
		s.reqEnded, s.bodyClosed = true, true
		s.discardLocked()
	}
	s.removeLocked()
	sc.mu.Unlock()
	if rst {
		sc.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(s.id, http2.ErrCodeNo) })
	}
	s.cancel()
}

// abort ends the stream with err: the handler's context is cancelled, its
// writes fail, its body reads fail. False if it had already ended.
func (s *h2ServerStream) abort(err error) bool {
	sc := s.sc
	sc.mu.Lock()
	if s.err != nil {
		sc.mu.Unlock()
		return false
	}
	s.err = err
	s.discardLocked()
	s.cond().Broadcast()
	sc.cond.Broadcast()
	s.removeLocked()
	sc.mu.Unlock()
	s.cancel()
	return true
}

func (s *h2ServerStream) discardLocked() {
	if n := len(s.buf) - s.off; n > 0 {
		s.sc.recvUnack += n
	}
	s.buf, s.off = nil, 0
}

// removeLocked forgets the stream once its handler returned and the
// client's side ended (or the stream was reset). sc.mu held.
func (s *h2ServerStream) removeLocked() {
	sc := s.sc
	if s.removed || !s.handlerDone || !(s.reqEnded || s.err != nil) {
		return
	}
	s.removed = true
	delete(sc.streams, s.id)
	if len(sc.streams) == 0 {
		if sc.goneAway {
			go sc.raw.Close() // the last stream after GOAWAY: end the reader
		} else if sc.idle != nil && !sc.closed {
			sc.idle.Reset(h2SrvIdleTimeout)
		}
	}
}

// onTrailers takes the request's trailers, which end its body.
func (s *h2ServerStream) onTrailers(f *http2.MetaHeadersFrame) error {
	sc := s.sc
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if s.reqEnded || !f.StreamEnded() {
		if s.reqEnded {
			return nil // a stream we stopped listening to
		}
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	s.reqTrailer = h2Trailer(f.RegularFields())
	s.reqEnded = true
	s.cond().Broadcast()
	s.removeLocked()
	return nil
}

// h2ReqBody is a stream's request body.
type h2ReqBody struct{ s *h2ServerStream }

var errH2ReqBodyClosed = errors.New("http2: request body closed")

func (b *h2ReqBody) Read(p []byte) (int, error) {
	s := b.s
	sc := s.sc
	sc.mu.Lock()
	for s.off == len(s.buf) && !s.reqEnded && s.err == nil && !s.bodyClosed {
		s.cond().Wait()
	}
	if s.bodyClosed {
		sc.mu.Unlock()
		return 0, errH2ReqBodyClosed
	}
	if s.off < len(s.buf) {
		n := copy(p, s.buf[s.off:])
		s.off += n
		if s.off == len(s.buf) {
			s.buf, s.off = s.buf[:0], 0
		}
		stream := 0
		if !s.reqEnded && s.err == nil {
			s.recvUnack += n
			if s.recvUnack >= h2SrvStreamWindow/2 {
				stream, s.recvUnack = s.recvUnack, 0
			}
		}
		sc.recvUnack += n
		conn := sc.takeConnCreditLocked()
		sc.mu.Unlock()
		sc.credit(s.id, stream, conn)
		return n, nil
	}
	err := s.err
	if err == nil {
		err = io.EOF
		if s.reqTrailer != nil {
			if s.req.Trailer == nil {
				s.req.Trailer = make(http.Header, len(s.reqTrailer))
			}
			for k, vv := range s.reqTrailer {
				s.req.Trailer[k] = vv
			}
			s.reqTrailer = nil
		}
	}
	sc.mu.Unlock()
	return 0, err
}

func (b *h2ReqBody) Close() error {
	s := b.s
	s.sc.mu.Lock()
	if !s.bodyClosed {
		s.bodyClosed = true
		s.discardLocked()
		s.cond().Broadcast()
	}
	s.sc.mu.Unlock()
	return nil
}

// Header is the response header map.
func (s *h2ServerStream) Header() http.Header {
	if s.hdr == nil {
		s.hdr = make(http.Header)
	}
	return s.hdr
}

// WriteHeader fixes the status and the header block (later changes to the
// map are trailers only, as with net/http). 1xx answers are not sent.
func (s *h2ServerStream) WriteHeader(code int) {
	if s.status != 0 || code < 200 {
		return
	}
	s.status = code
	s.fields = s.fields[:0]
	for k, vv := range s.hdr {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		name, ok := h2LowerHeader(k)
		if !ok {
			continue
		}
		switch name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			continue
		case "trailer":
			for _, v := range vv {
				for t := range strings.SplitSeq(v, ",") {
					if t = strings.TrimSpace(t); t != "" {
						s.trailerKeys = append(s.trailerKeys, http.CanonicalHeaderKey(t))
					}
				}
			}
		}
		for _, v := range vv {
			s.fields = append(s.fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
}

// Write sends body bytes; the first h2OutHold are held back until the
// handler flushes, writes more, or returns.
func (s *h2ServerStream) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	if !s.sentHeader && len(s.out)+len(p) <= h2OutHold {
		s.out = append(s.out, p...)
		return len(p), nil
	}
	if err := s.flush(false); err != nil {
		return 0, err
	}
	if err := s.writeData(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush sends the headers and what is held back.
func (s *h2ServerStream) Flush() {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	_ = s.flush(false)
}

// flush sends the headers (if not yet) and the held-back bytes; end puts
// END_STREAM on the last frame.
func (s *h2ServerStream) flush(end bool) error {
	if !s.sentHeader {
		s.sentHeader = true
		headersEnd := end && len(s.out) == 0
		if err := s.writeHeaders(s.fields, true, headersEnd); err != nil {
			return err
		}
		if headersEnd {
			return nil
		}
	}
	if len(s.out) == 0 && !end {
		return nil
	}
	err := s.writeData(s.out, end)
	s.out = s.out[:0]
	return err
}

// finish ends a handler's answer: headers if none went, held-back bytes,
// and END_STREAM on the last of them or on the trailers.
func (s *h2ServerStream) finish() {
	if s.status == 0 {
		s.WriteHeader(http.StatusOK)
	}
	var trailers []hpack.HeaderField
	for _, k := range s.trailerKeys {
		if name, ok := h2LowerHeader(k); ok {
			for _, v := range s.hdr[k] {
				trailers = append(trailers, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	for k, vv := range s.hdr {
		if rest, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if name, ok := h2LowerHeader(http.CanonicalHeaderKey(rest)); ok {
				for _, v := range vv {
					trailers = append(trailers, hpack.HeaderField{Name: name, Value: v})
				}
			}
		}
	}
	if err := s.flush(len(trailers) == 0); err != nil || len(trailers) == 0 {
		return
	}
	_ = s.writeHeaders(trailers, false, true)
}

var errH2StreamGone = errors.New("http2: stream reset or connection closed")

// writeHeaders sends a header block (the response's, with :status, or
// trailers).
func (s *h2ServerStream) writeHeaders(fields []hpack.HeaderField, status, end bool) error {
	sc := s.sc
	sc.mu.Lock()
	if s.err != nil || sc.closed {
		sc.mu.Unlock()
		return errH2StreamGone
	}
	maxFrame := sc.maxFrame
	sc.mu.Unlock()
	ok := sc.write(func(fr *http2.Framer) error {
		sc.hbuf.Reset()
		if status {
			sc.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusCode(s.status)})
		}
		for _, f := range fields {
			sc.henc.WriteField(f)
		}
		return writeH2HeaderBlock(sc.fr, s.id, end, sc.hbuf.Bytes(), maxFrame)
	})
	if !ok {
		return errH2Closed
	}
	return nil
}

// writeData sends p as DATA frames within the client's windows.
func (s *h2ServerStream) writeData(p []byte, end bool) error {
	sc := s.sc
	for {
		sc.mu.Lock()
		for s.err == nil && !sc.closed && len(p) > 0 && (s.sendWindow <= 0 || sc.sendWindow <= 0) {
			sc.cond.Wait()
		}
		if s.err != nil || sc.closed {
			sc.mu.Unlock()
			return errH2StreamGone
		}
		chunk := 0 // an empty END_STREAM frame needs no window
		if len(p) > 0 {
			chunk = min(len(p), int(s.sendWindow), int(sc.sendWindow), sc.maxFrame)
		}
		s.sendWindow -= int32(chunk)
		sc.sendWindow -= int32(chunk)
		sc.mu.Unlock()
		last := chunk == len(p)
		data := p[:chunk]
		if !sc.write(func(fr *http2.Framer) error { return fr.WriteData(s.id, end && last, data) }) {
			return errH2Closed
		}
		p = p[chunk:]
		if last {
			return nil
		}
	}
}

// statusCode is :status; the common ones are not formatted per response.
func statusCode(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 404:
		return "404"
	case 502:
		return "502"
	case 503:
		return "503"
	case 504:
		return "504"
	}
	return strconv.Itoa(code)
}

// canonicalH2Header canonicalises a lower-case HTTP/2 name, from the
// common-header table when it can (no allocation).
// h2Header turns a HEADERS frame's regular fields into an http.Header, with
// the trailers it announces (Trailer) as the keys of trailer. One backing
// array holds every value: a name seen once (nearly all) takes a
// one-element window of it instead of a slice of its own; append copies out
// if a name repeats. With takeHost, a Host field is returned as host and
// left out of h (a request's authority, RFC 9113 §8.3.1); the client keeps
// every field of a response.
func h2Header(regular []hpack.HeaderField, takeHost bool) (h, trailer http.Header, host string) {
	h = make(http.Header, len(regular))
	vals := make([]string, len(regular))
	for i, hf := range regular {
		k := canonicalH2Header(hf.Name)
		switch {
		case k == "Host" && takeHost:
			if host == "" {
				host = hf.Value
			}
			continue
		case k == "Trailer":
			for v := range strings.SplitSeq(hf.Value, ",") {
				if v = textproto.TrimString(v); v != "" {
					if trailer == nil {
						trailer = http.Header{}
					}
					trailer[textproto.CanonicalMIMEHeaderKey(v)] = nil
				}
			}
		}
		if vv := h[k]; vv != nil {
			h[k] = append(vv, hf.Value)
		} else {
			vals[i] = hf.Value
			h[k] = vals[i : i+1 : i+1]
		}
	}
	return h, trailer, host
}

// h2Trailer turns a trailing HEADERS frame's fields into trailers.
func h2Trailer(regular []hpack.HeaderField) http.Header {
	tr := make(http.Header, len(regular))
	for _, hf := range regular {
		k := canonicalH2Header(hf.Name)
		tr[k] = append(tr[k], hf.Value)
	}
	return tr
}

func canonicalH2Header(name string) string {
	if k, ok := h2CommonCanon[name]; ok {
		return k
	}
	return http.CanonicalHeaderKey(name)
}

var h2CommonCanon = func() map[string]string {
	m := make(map[string]string, len(h2CommonLower))
	for k, v := range h2CommonLower {
		m[v] = k
	}
	return m
}()
