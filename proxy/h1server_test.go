package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// edgeApp answers by path: /echo reports what arrived, /chunked streams
// two flushed parts and a trailer, /fixed has a 5-byte body, /eof ends its
// body by closing the connection, /big sends 200 KB.
func edgeApp(t *testing.T) string {
	addr, _ := proxytest.HTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "method=%s query=%s body=%s len=%d secret=%q foo=%q te=%q xfcc=%q ka=%q",
				r.Method, r.URL.RawQuery, trimTo(b, 16), len(b), r.Header.Get("X-Secret"), r.Header.Get("X-Foo"),
				r.Header.Get("Te"), r.Header.Get("X-Forwarded-Client-Cert"), r.Header.Get("Keep-Alive"))
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "part1")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "42")
		case "/fixed":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/eof":
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			brw.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close")
			brw.Flush()
			c.Close()
		case "/big":
			io.WriteString(w, strings.Repeat("x", 200_000))
		}
	}))
	return addr
}

func trimTo(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// edgeMeshes starts a client sidecar in front of app, either straight to
// it (one hop) or through a server sidecar's inbound listener (two hops),
// and returns the client's fixed port by name.
func edgeMeshes(t *testing.T, app string) map[string]string {
	svc := proxytest.Service("shop/edge", 80, spec.ProtocolHTTP)
	svc.Ports[0].TargetPort = proxytest.Port(t, app)
	server := startProxy(t, &proxy.Bootstrap{
		Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
		Config:  proxytest.Compile(t, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, spec.Node{ID: "server", Services: []spec.Key{svc.Key}}),
	})
	out := map[string]string{}
	for name, ep := range map[string]spec.Endpoint{
		"one hop":  proxytest.AppEndpoint(t, app, 80),
		"two hops": proxytest.SidecarEndpoint(t, server.InboundAddr()),
	} {
		s := svc
		s.Endpoints = []spec.Endpoint{ep}
		p := startProxy(t, &proxy.Bootstrap{
			Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/edge", Port: 80, Listen: "127.0.0.1:0"}}},
			Config:   proxytest.Compile(t, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{s}}, spec.Node{ID: "client"}),
		})
		out[name] = p.FixedAddr("shop/edge", 80).String()
	}
	return out
}

// rawConn is a client speaking HTTP/1.1 bytes on one connection.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response to a request with method and returns it with its
// body (trailers are then in resp.Trailer).
func (r *rawConn) read(method string) (*http.Response, string) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection.
func (r *rawConn) closed() bool {
	_, err := r.br.ReadByte()
	return err == io.EOF
}

// TestH1EdgeCases sends raw HTTP/1.1 through the fast path (and the
// net/http path it hands unusual requests to), one hop and two hops, and
// checks each answer byte-level: framing, hop-by-hop fields, keep-alive.
func TestH1EdgeCases(t *testing.T) {
	addrs := edgeMeshes(t, edgeApp(t))
	type step struct {
		method string // of the request the response answers
		status int
		body   string // substring of the body
	}
	cases := []struct {
		name  string
		send  string
		steps []step
		check func(t *testing.T, r *rawConn, resps []*http.Response)
	}{
		{name: "Content-Length body forwarded", send: "POST /echo HTTP/1.1\r\nHost: edge\r\nContent-Length: 5\r\n\r\nhello",
			steps: []step{{"POST", 200, "method=POST query= body=hello len=5"}}},
		{name: "chunked upload (net/http path)", send: "POST /echo HTTP/1.1\r\nHost: edge\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
			steps: []step{{"POST", 200, "body=hello len=5"}}},
		{name: "chunked response with trailer", send: "GET /chunked HTTP/1.1\r\nHost: edge\r\n\r\n",
			steps: []step{{"GET", 200, "part1part2"}},
			check: func(t *testing.T, _ *rawConn, resps []*http.Response) {
				if te := resps[0].TransferEncoding; len(te) != 1 || te[0] != "chunked" {
					t.Fatalf("Transfer-Encoding %v, want chunked", te)
				}
				if got := resps[0].Trailer.Get("X-Sum"); got != "42" {
					t.Fatalf("trailer X-Sum = %q, want 42", got)
				}
			}},
		{name: "pipelined requests answered in order", send: "GET /echo?i=1 HTTP/1.1\r\nHost: edge\r\n\r\n" +
			"POST /echo?i=2 HTTP/1.1\r\nHost: edge\r\nContent-Length: 3\r\n\r\nabc" +
			"GET /fixed HTTP/1.1\r\nHost: edge\r\n\r\n",
			steps: []step{{"GET", 200, "query=i=1"}, {"POST", 200, "query=i=2 body=abc"}, {"GET", 200, "hello"}}},
		{name: "HEAD has no body, connection goes on", send: "HEAD /fixed HTTP/1.1\r\nHost: edge\r\n\r\nGET /fixed HTTP/1.1\r\nHost: edge\r\n\r\n",
			steps: []step{{"HEAD", 200, ""}, {"GET", 200, "hello"}},
			check: func(t *testing.T, _ *rawConn, resps []*http.Response) {
				if resps[0].ContentLength != 5 {
					t.Fatalf("HEAD Content-Length %d, want 5", resps[0].ContentLength)
				}
			}},
		{name: "hop-by-hop fields stripped, others and TE: trailers kept",
			send:  "GET /echo HTTP/1.1\r\nHost: edge\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Foo: bar\r\n\r\n",
			steps: []step{{"GET", 200, `secret="" foo="bar" te="trailers" xfcc="" ka=""`}}},
		{name: "Connection: close is honoured", send: "GET /fixed HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n",
			steps: []step{{"GET", 200, "hello"}},
			check: func(t *testing.T, r *rawConn, resps []*http.Response) {
				if !resps[0].Close || !r.closed() {
					t.Fatalf("response Close=%v; want Connection: close and the connection closed", resps[0].Close)
				}
			}},
		{name: "body ended by close is re-chunked, connection goes on", send: "GET /eof HTTP/1.1\r\nHost: edge\r\n\r\nGET /fixed HTTP/1.1\r\nHost: edge\r\n\r\n",
			steps: []step{{"GET", 200, "until-close"}, {"GET", 200, "hello"}}},
		{name: "large body both ways", send: "POST /echo HTTP/1.1\r\nHost: edge\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("y", 100_000) +
			"GET /big HTTP/1.1\r\nHost: edge\r\n\r\n",
			steps: []step{{"POST", 200, "len=100000"}, {"GET", 200, strings.Repeat("x", 200_000)}}},
		{name: "100-continue (net/http path)", send: "POST /echo HTTP/1.1\r\nHost: edge\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
			check: func(t *testing.T, r *rawConn, _ []*http.Response) {
				resp, _ := r.read("POST")
				if resp.StatusCode != 100 {
					t.Fatalf("interim status %d, want 100", resp.StatusCode)
				}
				r.send("hello")
				resp, body := r.read("POST")
				if resp.StatusCode != 200 || !strings.Contains(body, "body=hello") {
					t.Fatalf("final %d %q", resp.StatusCode, body)
				}
			}},
		{name: "head over 1 MB -> 431", send: "GET /echo HTTP/1.1\r\nHost: edge\r\nX-Big: " + strings.Repeat("z", 2<<20) + "\r\n\r\n",
			check: func(t *testing.T, r *rawConn, _ []*http.Response) {
				// Status only: net/http closes with the rest of the head
				// unread, so the body may be cut by a reset.
				resp, err := http.ReadResponse(r.br, nil)
				if err != nil || resp.StatusCode != 431 {
					t.Fatalf("got %v, %v; want 431", resp, err)
				}
			}},
		{name: "malformed header -> 400", send: "GET /echo HTTP/1.1\r\nHost: edge\r\nNo-Colon-Here\r\n\r\n",
			steps: []step{{"GET", 400, ""}}},
		{name: "request after a fallback still served", send: "GET /echo HTTP/1.0\r\nHost: edge\r\nConnection: keep-alive\r\n\r\nGET /fixed HTTP/1.1\r\nHost: edge\r\n\r\n",
			steps: []step{{"GET", 200, "method=GET"}, {"GET", 200, "hello"}}},
	}
	for hop, addr := range addrs {
		for _, tc := range cases {
			t.Run(hop+"/"+tc.name, func(t *testing.T) {
				r := dialRaw(t, addr)
				r.send(tc.send)
				var resps []*http.Response
				for i, s := range tc.steps {
					resp, body := r.read(s.method)
					if resp.StatusCode != s.status || !strings.Contains(body, s.body) {
						t.Fatalf("response %d: %d %q; want %d containing %q", i, resp.StatusCode, trimTo([]byte(body), 200), s.status, trimTo([]byte(s.body), 200))
					}
					resps = append(resps, resp)
				}
				if tc.check != nil {
					tc.check(t, r, resps)
				}
			})
		}
	}
}

// TestH1Slowloris: a request head that stops arriving is cut after the
// header timeout, while an idle keep-alive connection outlives it.
func TestH1Slowloris(t *testing.T) {
	// The timeout and gaps leave a loaded machine room: a head split by
	// 300 ms must pass a 1 s timeout, idle gaps of 1.5 s must not count.
	const timeout = time.Second
	// Restored after the proxies are closed (cleanups run last-in first-out).
	t.Cleanup(proxy.SetHeaderTimeoutForTest(timeout))
	addr := edgeMeshes(t, edgeApp(t))["one hop"]
	t.Run("stalled head is cut", func(t *testing.T) {
		// Timed from before the dial: the proxy's header timer starts when
		// it accepts, which is later, so the cut comes at least timeout
		// after start however long this goroutine stalls before sending.
		start := time.Now()
		r := dialRaw(t, addr)
		r.send("GET /fixed HTTP/1.1\r\nHost: ed")
		if !r.closed() {
			t.Fatal("connection not closed")
		}
		// Cut by the header timer, not at once for some other reason.
		if d := time.Since(start); d < timeout/2 {
			t.Fatalf("closed after %v, before the %v header timeout", d, timeout)
		}
	})
	t.Run("idle keep-alive outlives the head timeout", func(t *testing.T) {
		r := dialRaw(t, addr)
		for range 2 {
			r.send("GET /fixed HTTP/1.1\r\nHost: edge\r\n\r\n")
			if resp, body := r.read("GET"); resp.StatusCode != 200 || body != "hello" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			time.Sleep(timeout + timeout/2)
		}
	})
	t.Run("a head begun after an idle gap gets its full time", func(t *testing.T) {
		r := dialRaw(t, addr)
		time.Sleep(timeout + timeout/2)
		r.send("GET /fixed HTTP/1.1\r\n")
		time.Sleep(300 * time.Millisecond)
		r.send("Host: edge\r\n\r\n")
		if resp, body := r.read("GET"); resp.StatusCode != 200 || body != "hello" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})
}

// TestH1TimeoutOnReusedConnection: requests on one upstream connection in
// quick succession each get their own route timeout, though the fast path
// keeps an earlier request's connection deadline when it is not due soon:
// one that fires early is moved on, and a backend slower than the timeout
// still gets 504 about the timeout after the request began.
func TestH1TimeoutOnReusedConnection(t *testing.T) {
	app, _ := proxytest.HTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
			select { // the proxy hangs up at its timeout: stop then
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "ok")
	}))
	// Margins are wide so a stalled machine cannot turn a 200 into a 504:
	// every answer is 1.2 s or more from the deadline it must beat (600 ms
	// before was within reach of a CI machine running every package at
	// once on two cores).
	const timeout = 3 * time.Second
	base, _ := oneService(t, "patient", app, proxy.Policy{Timeout: proxy.Duration(timeout), Breaker: noBreaker()}, spec.Input{})
	r := dialRaw(t, strings.TrimPrefix(base, "http://"))
	steps := []struct {
		name   string
		delay  time.Duration
		pause  time.Duration // before sending
		status int
	}{
		{"first sets the connection deadline", 0, 0, 200},
		// Sent 2.4 s later: the first request's deadline would fire 600 ms
		// in, before the answer at 1.2 s, while this request's own
		// deadline (3 s) is still far off.
		{"answer after the kept deadline but within its own", 1200 * time.Millisecond, 2400 * time.Millisecond, 200},
		{"slower than the timeout", 10 * time.Second, 0, 504},
	}
	for _, st := range steps {
		time.Sleep(st.pause)
		start := time.Now()
		r.send(fmt.Sprintf("GET /?delay=%s HTTP/1.1\r\nHost: patient\r\n\r\n", st.delay))
		resp, body := r.read("GET")
		took := time.Since(start)
		if resp.StatusCode != st.status {
			t.Fatalf("%s: %d %q after %v, want %d", st.name, resp.StatusCode, body, took, st.status)
		}
		// The 504 comes from the proxy's timer, not the backend's answer:
		// not before the timeout (a kept deadline firing early would cut
		// at about 1.8 s; the slack is for a request head the proxy found
		// already buffered, whose time counts from the previous answer),
		// and long before the 10 s backend.
		if st.status == 504 && (took < timeout*9/10 || took >= st.delay) {
			t.Fatalf("%s: 504 after %v, want it at the %v timeout", st.name, took, timeout)
		}
	}
}
