package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Client is a small HTTP/1.1 client for the proxy's hot path. Unlike
// http.Transport, which hands every request to a per-connection writer and
// reader goroutine, it writes the request and reads the response headers on
// the calling goroutine, and the response body is read by whoever copies it
// to the client: no goroutine switch per request, nothing per connection
// but its buffers. It serves plain HTTP/1.1 cluster ports without a
// connection cap and the inbound side's HTTP/1.1 app ports; Upgrade
// requests, HTTP/2 and capped pools stay on http.Transport.
//
// Goroutines: none. A connection belongs to one request from get until its
// response body hits EOF (back to the idle list) or is closed early
// (closed). context.AfterFunc breaks a blocked read or write when the
// request's context ends.
type h1Client struct {
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle int

	mu     sync.Mutex
	idle   map[string][]*h1Conn
	closed bool
}

// h1IdleTimeout drops pooled connections idle this long rather than risk a
// backend having closed them (most close after 60 s or more).
const h1IdleTimeout = 50 * time.Second

type h1Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	idleAt time.Time
	// deadline says a deadline may still be set on nc: the fast path
	// leaves the header deadline in place when the body needs no more
	// reads, and whoever takes the connection next sets or clears it.
	deadline bool
	dl       time.Time // the deadline set, when deadline is true
}

func newH1Client(dial func(context.Context, string, string) (net.Conn, error), maxIdle int) *h1Client {
	if maxIdle <= 0 {
		maxIdle = 2
	}
	return &h1Client{dial: dial, maxIdle: maxIdle, idle: map[string][]*h1Conn{}}
}

// get takes an idle connection to addr (unless fresh) or dials one; now is
// the caller's clock reading, for the idle check.
func (h *h1Client) get(ctx context.Context, addr string, fresh bool, now time.Time) (*h1Conn, bool, error) {
	if !fresh {
		h.mu.Lock()
		list := h.idle[addr]
		for len(list) > 0 {
			c := list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			if now.Sub(c.idleAt) < h1IdleTimeout {
				h.idle[addr] = list
				h.mu.Unlock()
				return c, true, nil
			}
			c.nc.Close()
		}
		h.idle[addr] = list
		h.mu.Unlock()
	}
	nc, err := h.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	rw := newRawIO(nc)
	return &h1Conn{nc: nc, br: bufio.NewReaderSize(rw, 4<<10), bw: bufio.NewWriterSize(rw, 4<<10), addr: addr}, false, nil
}

// put pools c; now is the caller's clock reading (a little early is fine:
// the connection is then dropped a little sooner).
func (h *h1Client) put(c *h1Conn, now time.Time) {
	c.idleAt = now
	h.mu.Lock()
	if h.closed || len(h.idle[c.addr]) >= h.maxIdle {
		h.mu.Unlock()
		c.nc.Close()
		return
	}
	h.idle[c.addr] = append(h.idle[c.addr], c)
	h.mu.Unlock()
}

// CloseIdleConnections closes pooled connections; busy ones close when
// their response is done.
func (h *h1Client) CloseIdleConnections() {
	h.mu.Lock()
	for addr, list := range h.idle {
		for _, c := range list {
			c.nc.Close()
		}
		delete(h.idle, addr)
	}
	h.mu.Unlock()
}

// close closes idle connections and stops pooling for good.
func (h *h1Client) close() {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.CloseIdleConnections()
}

var aLongTimeAgo = time.Unix(1, 0)

// RoundTrip sends req (origin-form, Host as set) on a pooled connection.
// A request that fails on a reused connection before any response byte and
// can be replayed is sent once more on a fresh one: the backend may have
// closed the idle connection as we took it.
func (h *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	return h.roundTrip(req, time.Time{})
}

// roundTrip is RoundTrip with a deadline for the response headers (zero:
// none); passing it, the request fails with errTimeout. The body, once
// headers are in, has no deadline: streams are not cut.
func (h *h1Client) roundTrip(req *http.Request, deadline time.Time) (*http.Response, error) {
	ctx := req.Context()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for try := 0; ; try++ {
		c, reused, err := h.get(ctx, req.URL.Host, try > 0, time.Now())
		if err != nil {
			return nil, err
		}
		if try > 0 && req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				c.nc.Close()
				return nil, err
			}
		}
		if !deadline.IsZero() || c.deadline {
			_ = c.nc.SetDeadline(deadline)
			c.deadline, c.dl = !deadline.IsZero(), deadline
		}
		// Until the headers are in, the client hanging up ends the wait.
		// After, whoever copies the body notices a gone client on write.
		stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
		resp, err := h.exchange(c, req)
		if stopped := stop(); err == nil && stopped {
			if c.deadline {
				_ = c.nc.SetDeadline(time.Time{})
				c.deadline = false
			}
			resp.Body = &h1Body{rc: resp.Body, h: h, c: c, keep: !resp.Close && !req.Close}
			return resp, nil
		}
		if err == nil {
			resp.Body.Close()
		}
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		var ne net.Error
		if !deadline.IsZero() && errors.As(err, &ne) && ne.Timeout() {
			return nil, errTimeout
		}
		if !reused || !replayable || try > 0 {
			return nil, err
		}
	}
}

// exchange writes the request and reads the response headers, skipping
// 1xx informational responses (101 is the caller's business and never
// reaches here: Upgrade requests use http.Transport).
func (h *h1Client) exchange(c *h1Conn, req *http.Request) (*http.Response, error) {
	if err := req.Write(c.bw); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

// h1Body gives the connection back when the body has been read to the end,
// and closes it when the reader stops early (the rest of the body would
// have to be drained before the next response could be read).
type h1Body struct {
	rc   io.ReadCloser
	h    *h1Client
	c    *h1Conn
	keep bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.release(true)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.release(false)
	}
	return nil
}

func (b *h1Body) release(eof bool) {
	b.done = true
	if eof && b.keep {
		b.h.put(b.c, time.Now())
		return
	}
	b.c.nc.Close()
}
