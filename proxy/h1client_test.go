package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// h1Backend serves h on loopback and counts the connections it accepted.
func h1Backend(t *testing.T, h http.HandlerFunc) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	s := &http.Server{Handler: h, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String(), &conns
}

func h1Get(t *testing.T, c *h1Client, method, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return resp, string(b)
}

// TestH1Client: the hot-path HTTP/1.1 client reuses connections only when
// a response was read whole, handles bodiless and chunked responses and
// trailers, and survives a backend that closed an idle connection.
func TestH1Client(t *testing.T) {
	addr, conns := h1Backend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "42")
		case "/big":
			io.WriteString(w, strings.Repeat("x", 256<<10))
		default:
			io.WriteString(w, "hello")
		}
	})
	c := newH1Client((&net.Dialer{}).DialContext, 4)
	defer c.close()
	base := "http://" + addr

	t.Run("keep-alive reuse", func(t *testing.T) {
		before := conns.Load()
		for range 5 {
			if _, body := h1Get(t, c, "GET", base+"/"); body != "hello" {
				t.Fatalf("body %q", body)
			}
		}
		if got := conns.Load() - before; got > 1 {
			t.Fatalf("%d connections for 5 sequential requests", got)
		}
	})
	t.Run("HEAD and 204 have no body", func(t *testing.T) {
		before := conns.Load()
		if resp, body := h1Get(t, c, "HEAD", base+"/"); resp.StatusCode != 200 || body != "" {
			t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
		}
		if resp, body := h1Get(t, c, "GET", base+"/empty"); resp.StatusCode != 204 || body != "" {
			t.Fatalf("204: %d %q", resp.StatusCode, body)
		}
		if got := conns.Load() - before; got != 0 {
			t.Fatalf("bodiless responses cost %d new connections", got)
		}
	})
	t.Run("chunked with trailers", func(t *testing.T) {
		resp, body := h1Get(t, c, "GET", base+"/chunked")
		if body != "part1,part2" || resp.Trailer.Get("X-Sum") != "42" {
			t.Fatalf("body %q trailer %v", body, resp.Trailer)
		}
	})
	t.Run("early close is not reused", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/big", nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, resp.Body, 1000)
		resp.Body.Close()
		before := conns.Load()
		if _, body := h1Get(t, c, "GET", base+"/"); body != "hello" {
			t.Fatalf("after an early close: %q (a half-read connection was reused)", body)
		}
		if conns.Load() != before+1 {
			t.Fatalf("want a fresh connection after an early close")
		}
	})
	t.Run("context ends a wait", func(t *testing.T) {
		slow, _ := h1Backend(t, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+slow+"/", nil)
		start := time.Now()
		// The bound tells the context's 100 ms from the backend's 30 s with
		// room for a stalled CI machine.
		if _, err := c.RoundTrip(req); err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("RoundTrip: %v after %v, want an error at the deadline", err, time.Since(start))
		}
	})
}

// TestH1ClientStaleConnection: a backend that silently closes a kept-alive
// connection costs the next request nothing: it is resent on a new one.
func TestH1ClientStaleConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			// Answer one request with keep-alive, then hang up.
			br := bufio.NewReader(nc)
			if _, err := http.ReadRequest(br); err == nil {
				io.WriteString(nc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			}
			nc.Close()
		}
	}()
	c := newH1Client((&net.Dialer{}).DialContext, 4)
	defer c.close()
	for i := range 3 {
		if _, body := h1Get(t, c, "GET", "http://"+ln.Addr().String()+"/"); body != "ok" {
			t.Fatalf("request %d: %q", i, body)
		}
		time.Sleep(20 * time.Millisecond) // let the hang-up arrive
	}
	ln.Close()
	<-done
	if accepted.Load() != 3 {
		t.Fatalf("backend accepted %d connections, want 3", accepted.Load())
	}
}
