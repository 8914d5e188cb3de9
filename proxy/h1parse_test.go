package proxy

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"testing"
)

// serializeRequestHead writes a parsed head back out, every field included,
// for the round trip.
func serializeRequestHead(h *h1Head) []byte {
	var b bytes.Buffer
	b.Write(h.method)
	b.WriteByte(' ')
	b.Write(h.target)
	b.WriteString(" HTTP/1.1\r\n")
	for _, f := range h.fields {
		b.Write(f.name)
		b.WriteString(": ")
		b.Write(f.value)
		b.WriteString("\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// checkRequestHead parses data the fast path's way and, when it accepts,
// checks that (1) net/http's own parser accepts it too and agrees on
// method, target, Host and Content-Length, so the fast path never forwards
// what net/http would answer 400; (2) writing the head back out and parsing
// again gives the same head.
func checkRequestHead(t *testing.T, data []byte) {
	n := headEnd(data, 0)
	if n < 0 {
		return
	}
	var h h1Head
	if parseRequestHead(data[:n], &h) != nil {
		return
	}
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data[:n])))
	if err != nil {
		t.Fatalf("fast path took a head net/http refuses (%v): %q", err, data[:n])
	}
	if req.Method != string(h.method) || req.RequestURI != string(h.target) || req.Host != string(h.host) {
		t.Fatalf("fast path %q %q host %q; net/http %q %q host %q", h.method, h.target, h.host, req.Method, req.RequestURI, req.Host)
	}
	if req.URL.Path != h.path() {
		t.Fatalf("path %q, net/http %q", h.path(), req.URL.Path)
	}
	wantCL := req.ContentLength
	if wantCL == 0 && req.Header.Get("Content-Length") == "" {
		wantCL = -1
	}
	if wantCL != h.contentLength {
		t.Fatalf("content length %d, net/http %d", h.contentLength, wantCL)
	}
	if req.Close != h.close {
		t.Fatalf("close %v, net/http %v", h.close, req.Close)
	}
	for _, f := range h.fields {
		if equalFold(f.name, "host") {
			continue
		}
		if got := h.Get(string(f.name)); got != req.Header.Get(string(f.name)) {
			t.Fatalf("Get(%q) = %q, net/http %q", f.name, got, req.Header.Get(string(f.name)))
		}
	}
	out := serializeRequestHead(&h)
	var h2 h1Head
	if err := parseRequestHead(out, &h2); err != nil {
		t.Fatalf("re-parse of %q: %v", out, err)
	}
	if !bytes.Equal(serializeRequestHead(&h2), out) || h2.contentLength != h.contentLength || h2.close != h.close ||
		!bytes.Equal(h2.host, h.host) || len(h2.fields) != len(h.fields) {
		t.Fatalf("round trip changed the head: %q -> %q", out, serializeRequestHead(&h2))
	}
}

func TestParseRequestHead(t *testing.T) {
	cases := []struct {
		name   string
		head   string
		ok     bool
		path   string
		cl     int64
		close  bool
		drops  []string // fields not forwarded
		header map[string]string
	}{
		{name: "plain GET", head: "GET /a/b?x=1 HTTP/1.1\r\nHost: h:80\r\nX-Foo: bar\r\n\r\n", ok: true, path: "/a/b", cl: -1,
			drops: []string{"Host"}, header: map[string]string{"x-foo": "bar", "X-FOO": "bar", "Host": ""}},
		{name: "POST with length", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n", ok: true, path: "/", cl: 12, drops: []string{"Host"}},
		{name: "hop-by-hop and Connection-named", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Authorization: x\r\n\r\n",
			ok: true, path: "/", cl: -1, close: true, drops: []string{"Host", "Connection", "X-Secret", "Keep-Alive", "TE", "Proxy-Authorization"}},
		{name: "HTTP/1.0 goes to net/http", head: "GET / HTTP/1.0\r\nHost: h\r\n\r\n"},
		{name: "absolute-form goes to net/http", head: "GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "h2c preface goes to net/http", head: "PRI * HTTP/2.0\r\n\r\n"},
		{name: "chunked upload goes to net/http", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{name: "Expect goes to net/http", head: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"},
		{name: "Upgrade goes to net/http", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"},
		{name: "Causeway-Retryable goes to net/http", head: "POST / HTTP/1.1\r\nHost: h\r\ncauseway-retryable: true\r\n\r\n"},
		{name: "escaped path goes to net/http", head: "GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "no Host", head: "GET / HTTP/1.1\r\nX: y\r\n\r\n"},
		{name: "two Hosts", head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{name: "bad Host", head: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n"},
		{name: "space before colon", head: "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
		{name: "obs-fold", head: "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n"},
		{name: "bare LF", head: "GET / HTTP/1.1\nHost: a\n\n"},
		{name: "conflicting lengths", head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"},
		{name: "signed length", head: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n"},
		{name: "control byte in value", head: "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h h1Head
			err := parseRequestHead([]byte(tc.head), &h)
			if (err == nil) != tc.ok {
				t.Fatalf("parse error %v, want ok=%v", err, tc.ok)
			}
			checkRequestHead(t, []byte(tc.head))
			if !tc.ok {
				return
			}
			if h.path() != tc.path || h.contentLength != tc.cl || h.close != tc.close {
				t.Fatalf("path %q cl %d close %v; want %q %d %v", h.path(), h.contentLength, h.close, tc.path, tc.cl, tc.close)
			}
			var dropped []string
			for _, f := range h.fields {
				if f.drop {
					dropped = append(dropped, string(f.name))
				}
			}
			if strconv.Quote(joinNames(dropped)) != strconv.Quote(joinNames(tc.drops)) {
				t.Fatalf("dropped %v, want %v", dropped, tc.drops)
			}
			for k, v := range tc.header {
				if got := h.Get(k); got != v {
					t.Fatalf("Get(%q) = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func joinNames(s []string) string {
	var b bytes.Buffer
	for _, x := range s {
		b.WriteString(x)
		b.WriteByte(',')
	}
	return b.String()
}

func TestChunkSize(t *testing.T) {
	cases := []struct {
		line string
		n    int64
		ok   bool
	}{
		{"5\r\n", 5, true},
		{"1aF;ext=1\r\n", 0x1af, true},
		{"0\r\n", 0, true},
		{"\r\n", 0, false},
		{"x\r\n", 0, false},
		{"1234567890abcdef0\r\n", 0, false},
	}
	for _, tc := range cases {
		t.Run(strconv.Quote(tc.line), func(t *testing.T) {
			n, ok := chunkSize([]byte(tc.line))
			if n != tc.n || ok != tc.ok {
				t.Fatalf("chunkSize = %d, %v; want %d, %v", n, ok, tc.n, tc.ok)
			}
		})
	}
}

// FuzzParseRequestHead: the fast path's parser never panics, accepts only
// heads net/http accepts and reads them as net/http does, and round-trips.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /x?y HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nTE: trailers\r\n\r\n",
		"PUT /a HTTP/1.1\r\nhost: h\r\ncontent-length: 007\r\nX: \t v \t\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRequestHead(t, data)
		var h h1Head
		_ = parseResponseHead(data, &h)
	})
}
