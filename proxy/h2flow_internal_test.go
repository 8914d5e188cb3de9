package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"weak"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawH2 is a client written with the Framer, so a test can break flow
// control on purpose against the proxy's HTTP/2 server.
type rawH2 struct {
	t    *testing.T
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	enc  *hpack.Encoder
	p    *Proxy
}

type rawH2Key struct{}

// serveRawH2 serves one loopback connection with the proxy's HTTP/2 server
// and handler h, and returns a raw client on it that has read the server's
// SETTINGS and connection WINDOW_UPDATE. h must return when its request's
// context ends; the test's cleanup closes the connection and waits for the
// server to finish.
func serveRawH2(t *testing.T, h http.HandlerFunc) *rawH2 {
	t.Helper()
	a, b := tcpPair(t)
	p := &Proxy{errLog: log.New(io.Discard, "", 0)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		p.serveHTTPFamily(b, nil, rawH2Key{}, nil, h)
	}()
	t.Cleanup(func() {
		a.Close()
		<-served
		p.h2s.stopWorkers()
	})
	r := &rawH2{t: t, c: a, p: p}
	r.enc = hpack.NewEncoder(&r.hbuf)
	_ = a.SetDeadline(time.Now().Add(time.Minute)) // a hung test fails instead of waiting for go test's timeout
	if _, err := io.WriteString(a, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	r.fr = http2.NewFramer(a, bufio.NewReader(a))
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	r.until(func(f http2.Frame) bool {
		wu, ok := f.(*http2.WindowUpdateFrame)
		return ok && wu.StreamID == 0
	})
	return r
}

// until reads frames until one satisfies pred, and returns it.
func (r *rawH2) until(pred func(http2.Frame) bool) http2.Frame {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("reading frames: %v", err)
		}
		if pred(f) {
			return f
		}
	}
}

func (r *rawH2) open(id uint32) {
	r.t.Helper()
	r.hbuf.Reset()
	for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/up"}, {":authority", "shop"}} {
		_ = r.enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.hbuf.Bytes(), EndHeaders: true}); err != nil {
		r.t.Fatal(err)
	}
}

// send writes n bytes of DATA on stream id in frames of at most 16 KiB,
// ignoring the windows the server granted.
func (r *rawH2) send(id uint32, n int, end bool) {
	r.t.Helper()
	chunk := make([]byte, 16<<10)
	for n > 0 {
		k := min(n, len(chunk))
		n -= k
		if err := r.fr.WriteData(id, end && n == 0, chunk[:k]); err != nil {
			r.t.Fatal(err)
		}
	}
}

// sync waits for a PING's answer: the server handled every frame before it.
func (r *rawH2) sync() {
	r.t.Helper()
	data := [8]byte{'s', 'y', 'n', 'c'}
	if err := r.fr.WritePing(false, data); err != nil {
		r.t.Fatal(err)
	}
	r.until(func(f http2.Frame) bool {
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck() && p.Data == data
	})
}

// holdBody answers nothing and reads nothing until its stream ends, so
// request bytes stay buffered in the server.
func holdBody(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// TestH2ServerFlowControl: a client that ignores the windows it was
// granted is stopped (RFC 9113 §6.9), and every byte a client sends is
// either buffered for a handler or credited back to the connection.
func TestH2ServerFlowControl(t *testing.T) {
	t.Run("overrunning the connection window ends the connection", func(t *testing.T) {
		r := serveRawH2(t, holdBody)
		// Sixteen streams each fill their 1 MiB window: the 16 MiB
		// connection window is used up but not exceeded.
		streams := uint32(h2SrvConnWindow / h2SrvStreamWindow)
		for i := range streams {
			r.open(2*i + 1)
			r.send(2*i+1, h2SrvStreamWindow, false)
		}
		r.sync() // nothing refused so far
		r.open(2*streams + 1)
		r.send(2*streams+1, 1, false)
		ga := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
		if ga.ErrCode != http2.ErrCodeFlowControl {
			t.Fatalf("GOAWAY %v, want FLOW_CONTROL_ERROR", ga.ErrCode)
		}
	})
	t.Run("a connection WINDOW_UPDATE past 2^31-1 ends the connection", func(t *testing.T) {
		r := serveRawH2(t, holdBody)
		if err := r.fr.WriteWindowUpdate(0, 1<<31-1); err != nil {
			t.Fatal(err)
		}
		ga := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
		if ga.ErrCode != http2.ErrCodeFlowControl {
			t.Fatalf("GOAWAY %v, want FLOW_CONTROL_ERROR", ga.ErrCode)
		}
	})
	t.Run("a stream WINDOW_UPDATE past 2^31-1 resets only that stream", func(t *testing.T) {
		r := serveRawH2(t, holdBody)
		r.open(1)
		if err := r.fr.WriteWindowUpdate(1, 1<<31-1); err != nil {
			t.Fatal(err)
		}
		rst := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
		if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeFlowControl {
			t.Fatalf("RST_STREAM %d %v, want stream 1 FLOW_CONTROL_ERROR", rst.StreamID, rst.ErrCode)
		}
		r.sync() // the connection still answers
	})
	t.Run("every byte received is buffered or credited", func(t *testing.T) {
		r := serveRawH2(t, holdBody)
		// Stream 1 overruns its window and is reset; its late bytes
		// still arrive.
		r.open(1)
		r.send(1, h2SrvStreamWindow+100, false)
		rst := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.RSTStreamFrame); return ok }).(*http2.RSTStreamFrame)
		if rst.StreamID != 1 || rst.ErrCode != http2.ErrCodeFlowControl {
			t.Fatalf("RST_STREAM %d %v, want stream 1 FLOW_CONTROL_ERROR", rst.StreamID, rst.ErrCode)
		}
		r.send(1, 5000, true)
		// Stream 3: padded frames, held unread by the handler.
		r.open(3)
		for range 3 {
			if err := r.fr.WriteDataPadded(3, false, make([]byte, 1000), make([]byte, 200)); err != nil {
				t.Fatal(err)
			}
		}
		// Stream 5: the client gives up on it.
		r.open(5)
		r.send(5, 70000, false)
		if err := r.fr.WriteRSTStream(5, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
		r.sync()
		r.p.h2s.mu.Lock()
		var sc *h2ServerConn
		for c := range r.p.h2s.conns {
			sc = c
		}
		r.p.h2s.mu.Unlock()
		sc.mu.Lock()
		buffered := 0
		for _, s := range sc.streams {
			buffered += len(s.buf) - s.off
		}
		held, unack := sc.recvHeld, sc.recvUnack
		sc.mu.Unlock()
		if buffered != 3000 {
			t.Errorf("%d bytes buffered, want stream 3's 3000", buffered)
		}
		if held != unack+buffered {
			t.Fatalf("the client has %d bytes of window in use; %d are buffered and %d wait for credit: %d are lost", held, buffered, unack, held-unack-buffered)
		}
	})
}

// TestH2ClientFlowControl: an upstream that sends more than the stream
// window the proxy granted gets its stream reset with FLOW_CONTROL_ERROR,
// and the proxy's reader sees the error instead of buffering without bound.
func TestH2ClientFlowControl(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	rstCode := make(chan http2.ErrCode, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Minute))
		br := bufio.NewReader(c)
		if _, err := io.ReadFull(br, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
		fr := http2.NewFramer(c, br)
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		var wmu sync.Mutex
		if fr.WriteSettings() != nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					_ = fr.WriteSettingsAck()
					wmu.Unlock()
				}
			case *http2.MetaHeadersFrame:
				id := f.StreamID
				wg.Go(func() {
					var hb bytes.Buffer
					_ = hpack.NewEncoder(&hb).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
					wmu.Lock()
					defer wmu.Unlock()
					if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}) != nil {
						return
					}
					chunk := make([]byte, 16<<10)
					for sent := 0; sent <= h2StreamWindow; sent += len(chunk) {
						if fr.WriteData(id, false, chunk) != nil {
							return
						}
					}
				})
			case *http2.RSTStreamFrame:
				rstCode <- f.ErrCode
				return
			}
		}
	})

	pool := newH2Pool((&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	defer pool.closeIdle()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/big", nil)
	resp, err := pool.roundTrip(req, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Nothing is read until the reset, so the window is not refilled by
	// credits while the upstream overruns it.
	select {
	case code := <-rstCode:
		if code != http2.ErrCodeFlowControl {
			t.Fatalf("upstream got RST_STREAM %v, want FLOW_CONTROL_ERROR", code)
		}
	case <-ctx.Done():
		t.Fatal("upstream never got RST_STREAM")
	}
	_, err = io.Copy(io.Discard, resp.Body)
	var se http2.StreamError
	if !errors.As(err, &se) || se.Code != http2.ErrCodeFlowControl {
		t.Fatalf("reading the body: %v, want a FLOW_CONTROL_ERROR stream error", err)
	}
}

// TestBatchConnWriteStall: a peer that stops reading fails the connection
// once one write has moved nothing for the stall bound, and the socket is
// closed so the reader ends too.
func TestBatchConnWriteStall(t *testing.T) {
	a, b := tcpPair(t)
	bc := newBatchConn(a)
	bc.stall = 200 * time.Millisecond
	chunk := make([]byte, 32<<10)
	var err error
	// Loopback socket buffers hold a few MiB; 1 GiB is far past them.
	for i := 0; i < 1<<15 && err == nil; i++ {
		_, err = bc.Write(chunk)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("writes to a peer that reads nothing: %v, want a deadline error", err)
	}
	_ = b.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.Copy(io.Discard, b); err != nil {
		t.Fatalf("the peer should read what was sent and then EOF: %v", err)
	}
}

// FuzzH2Server feeds the proxy's HTTP/2 server whatever frames follow the
// client preface, with a handler that reads the request body and answers.
// Whatever the bytes, the server must not panic, and must finish (every
// stream's handler returned, the connection closed) once the client side
// is closed.
func FuzzH2Server(f *testing.F) {
	for _, seed := range h2Seeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frames []byte) {
		a, b := net.Pipe()
		p := &Proxy{errLog: log.New(io.Discard, "", 0)}
		h := func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Seen", r.URL.Path)
			_, _ = io.WriteString(w, "ok")
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			p.serveHTTPFamily(b, nil, rawH2Key{}, nil, h)
		}()
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			_, _ = io.Copy(io.Discard, a)
		}()
		// The server reads everything or closes the connection; a write
		// that blocks means it did neither.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			_, _ = a.Write(append([]byte(http2.ClientPreface), frames...))
		}()
		select {
		case <-wrote:
		case <-time.After(fuzzWait):
			t.Fatalf("the server stopped reading without closing the connection:\n%s", allStacks())
		}
		a.Close()
		select {
		case <-served:
		case <-time.After(fuzzWait):
			t.Fatalf("the server did not finish within 30 s of the client closing:\n%s", allStacks())
		}
		<-drained
		p.h2s.stopWorkers()
	})
}

// h2Seeds are frame sequences a client sends: requests with and without
// bodies, trailers, window updates, pings, resets, settings, GOAWAY.
func h2Seeds(f *testing.F) [][]byte {
	var seeds [][]byte
	hdr := func(enc *hpack.Encoder, hb *bytes.Buffer, kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return slices.Clone(hb.Bytes())
	}
	for _, script := range []func(fr *http2.Framer, h func(kv ...string) []byte){
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 16})
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":method", "GET", ":scheme", "http", ":path", "/a", ":authority", "x"), EndStream: true, EndHeaders: true})
		},
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":method", "POST", ":scheme", "http", ":path", "/b", ":authority", "x", "content-length", "5"), EndHeaders: true})
			_ = fr.WriteData(1, false, []byte("he"))
			_ = fr.WriteDataPadded(1, true, []byte("llo"), []byte{0, 0})
			_ = fr.WriteWindowUpdate(0, 1000)
			_ = fr.WritePing(false, [8]byte{1})
		},
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h(":method", "POST", ":scheme", "http", ":path", "/t", ":authority", "x", "te", "trailers"), EndHeaders: true})
			_ = fr.WriteData(3, false, []byte("body"))
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: h("x-sum", "1"), EndStream: true, EndHeaders: true})
			_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
			_ = fr.WriteGoAway(3, http2.ErrCodeNo, nil)
		},
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			block := h(":method", "GET", ":scheme", "http", ":path", "/c", ":authority", "x")
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: block[:2], EndStream: true})
			_ = fr.WriteContinuation(5, true, block[2:])
			_ = fr.WritePriority(5, http2.PriorityParam{StreamDep: 0, Weight: 10})
			_ = fr.WriteWindowUpdate(5, 1<<31-1)
		},
	} {
		var buf, hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		fr := http2.NewFramer(&buf, nil)
		script(fr, func(kv ...string) []byte { return hdr(enc, &hb, kv...) })
		seeds = append(seeds, buf.Bytes())
	}
	return seeds
}

func allStacks() []byte {
	buf := make([]byte, 1<<20)
	return buf[:runtime.Stack(buf, true)]
}

// fuzzWait bounds one input's run; a finished one takes microseconds.
const fuzzWait = 30 * time.Second

// TestH2ServerBounds: what a client can make the server hold is bounded by
// what the server advertised, and a closed connection is not held on to.
func TestH2ServerBounds(t *testing.T) {
	t.Run("a frame longer than SETTINGS_MAX_FRAME_SIZE ends the connection", func(t *testing.T) {
		r := serveRawH2(t, holdBody)
		r.open(1)
		// Only the 9-byte header: a Framer without the limit would
		// allocate the 1 MiB it claims and wait for it.
		hdr := []byte{0x10, 0x00, 0x00, byte(http2.FrameData), 0, 0, 0, 0, 1}
		if _, err := r.c.Write(hdr); err != nil {
			t.Fatal(err)
		}
		ga := r.until(func(f http2.Frame) bool { _, ok := f.(*http2.GoAwayFrame); return ok }).(*http2.GoAwayFrame)
		if ga.ErrCode != http2.ErrCodeFrameSize {
			t.Fatalf("GOAWAY %v, want FRAME_SIZE_ERROR", ga.ErrCode)
		}
	})
	t.Run("a connection closed with a stream in flight is freed", func(t *testing.T) {
		a, b := tcpPair(t)
		p := &Proxy{errLog: log.New(io.Discard, "", 0)}
		release := make(chan struct{})
		served := make(chan struct{})
		go func() {
			defer close(served)
			p.serveHTTPFamily(b, nil, rawH2Key{}, nil, func(http.ResponseWriter, *http.Request) { <-release })
		}()
		defer p.h2s.stopWorkers()
		r := &rawH2{t: t, c: a, p: p}
		r.enc = hpack.NewEncoder(&r.hbuf)
		if _, err := io.WriteString(a, http2.ClientPreface); err != nil {
			t.Fatal(err)
		}
		r.fr = http2.NewFramer(a, bufio.NewReader(a))
		r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		r.open(1)
		r.sync() // the stream's handler is running
		p.h2s.mu.Lock()
		var sc *h2ServerConn
		for c := range p.h2s.conns {
			sc = c
		}
		p.h2s.mu.Unlock()
		gone := weak.Make(sc)
		sc = nil
		a.Close()
		// The handler ends after the reader did: its stream is the last
		// one removed, which must not re-arm the 5-minute idle timer.
		time.Sleep(50 * time.Millisecond)
		close(release)
		<-served
		for range 10 {
			runtime.GC()
			if gone.Value() == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the closed connection is still reachable (an idle timer re-armed after close holds it)")
	})
}

// FuzzH2Client has the proxy's HTTP/2 client send one request (with a
// body) to an upstream that answers with whatever frames follow its
// SETTINGS, then hangs up. Whatever the bytes, the client must not panic,
// and the request must end (an answer whose body reads to its end, or an
// error) once the upstream is gone; its connections then close.
func FuzzH2Client(f *testing.F) {
	for _, seed := range h2ClientSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, frames []byte) {
		var wg sync.WaitGroup
		defer wg.Wait()
		pool := newH2Pool(func(context.Context, string, string) (net.Conn, error) {
			a, b := net.Pipe()
			wg.Go(func() { _, _ = io.Copy(io.Discard, b) }) // the client's preface, settings, request
			wg.Go(func() {
				defer b.Close()
				var settings bytes.Buffer
				_ = http2.NewFramer(&settings, nil).WriteSettings()
				_, _ = b.Write(append(settings.Bytes(), frames...))
			})
			return a, nil
		})
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), fuzzWait)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://upstream/f", strings.NewReader("body"))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("body")), nil }
			resp, err := pool.roundTrip(req, time.Now().Add(fuzzWait))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(2 * fuzzWait):
			t.Fatalf("the request did not end after the upstream hung up:\n%s", allStacks())
		}
		pool.closeIdle()
	})
}

// h2ClientSeeds are upstream answers: headers and a body, trailers, a
// reset, GOAWAY, window updates, a push promise, settings changes.
func h2ClientSeeds() [][]byte {
	var seeds [][]byte
	for _, script := range []func(fr *http2.Framer, h func(kv ...string) []byte){
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WriteSettingsAck()
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":status", "200", "content-type", "text/plain"), EndHeaders: true})
			_ = fr.WriteData(1, false, []byte("hel"))
			_ = fr.WriteDataPadded(1, true, []byte("lo"), []byte{0, 0, 0})
		},
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WriteWindowUpdate(0, 100000)
			_ = fr.WriteWindowUpdate(1, 100000)
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":status", "200", "grpc-encoding", "identity"), EndHeaders: true})
			_ = fr.WriteData(1, false, []byte{0, 0, 0, 0, 1, 7})
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h("grpc-status", "0"), EndStream: true, EndHeaders: true})
		},
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: h(":status", "100"), EndHeaders: true})
			_ = fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
			_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		},
		func(fr *http2.Framer, h func(kv ...string) []byte) {
			_ = fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: h(":method", "GET", ":path", "/p"), EndHeaders: true})
			block := h(":status", "204")
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:1], EndStream: true})
			_ = fr.WriteContinuation(1, true, block[1:])
			_ = fr.WritePing(false, [8]byte{9})
		},
	} {
		var buf, hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		fr := http2.NewFramer(&buf, nil)
		script(fr, func(kv ...string) []byte {
			hb.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				_ = enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
			}
			return slices.Clone(hb.Bytes())
		})
		seeds = append(seeds, buf.Bytes())
	}
	return seeds
}
