package demoapp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a demo app for the test and shuts it down at cleanup.
func start(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Name == "" {
		o.Name, o.Version = "web", "v2"
	}
	s, err := Start(t.Context(), o)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return s
}

// h1 and h2c clients; idle connections are closed at cleanup so the leak
// check sees no transport goroutines.
func clients(t *testing.T) (h1, h2c *http.Client) {
	t.Helper()
	var p2 http.Protocols
	p2.SetUnencryptedHTTP2(true)
	h1 = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	h2c = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &p2}}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2c.CloseIdleConnections)
	return h1, h2c
}

func decode(t *testing.T, resp *http.Response) Response {
	t.Helper()
	defer resp.Body.Close()
	var r Response
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("decode JSON body (status %d): %v", resp.StatusCode, err)
	}
	return r
}

func TestHTTPAnswersJSON(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Listen: "127.0.0.1:0"})
	h1, h2c := clients(t)
	xfcc := `By=spiffe://cluster.local/ns/shop/sa/web;Hash=abc;URI=spiffe://cluster.local/ns/shop/sa/client`
	cases := []struct {
		name       string
		client     *http.Client
		method     string
		target     string
		body       string
		header     http.Header
		wantStatus int
		wantProto  string
	}{
		{"GET with XFCC", h1, "GET", "/shop/items?x=1", "", http.Header{"X-Forwarded-Client-Cert": {xfcc}}, 200, "HTTP/1.1"},
		{"POST body counted", h1, "POST", "/orders", strings.Repeat("x", 12345), http.Header{"X-Multi": {"a", "b"}}, 200, "HTTP/1.1"},
		{"status override", h1, "PUT", "/teapot?status=418", "", nil, 418, "HTTP/1.1"},
		{"h2c prior knowledge", h2c, "GET", "/h2", "", http.Header{"X-Forwarded-Client-Cert": {xfcc}}, 200, "HTTP/2.0"},
		{"h2c POST", h2c, "POST", "/h2/post", strings.Repeat("y", 70000), nil, 200, "HTTP/2.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, s.URL()+tc.target, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || resp.Proto != tc.wantProto {
				t.Fatalf("status %d over %s, want %d over %s", resp.StatusCode, resp.Proto, tc.wantStatus, tc.wantProto)
			}
			if resp.Header.Get(HeaderName) != "web" || resp.Header.Get(HeaderVersion) != "v2" {
				t.Errorf("response headers %v, want %s: web and %s: v2", resp.Header, HeaderName, HeaderVersion)
			}
			got := decode(t, resp)
			path, _, _ := strings.Cut(tc.target, "?")
			want := Response{
				Name: "web", Version: "v2", Method: tc.method, Path: path, Host: s.HTTPAddr.String(),
				Proto: tc.wantProto, BodyBytes: int64(len(tc.body)), Status: tc.wantStatus,
			}
			gotHeaders := got.Headers
			got.Headers = nil
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Errorf("body %+v\nwant %+v", got, want)
			}
			for k, v := range tc.header {
				if fmt.Sprint(gotHeaders[k]) != fmt.Sprint(v) {
					t.Errorf("headers[%s] = %q, want %q (all: %v)", k, gotHeaders[k], v, gotHeaders)
				}
			}
		})
	}
}

func TestHTTPRejectsBadOverrides(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Listen: "127.0.0.1:0"})
	h1, _ := clients(t)
	for _, q := range []string{"status=abc", "status=42", "latency=soon"} {
		t.Run(q, func(t *testing.T) {
			resp, err := h1.Get(s.URL() + "/?" + q)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), strings.Split(q, "=")[0]) {
				t.Fatalf("?%s: status %d body %q, want 400 naming the parameter", q, resp.StatusCode, body)
			}
		})
	}
}

func TestLatency(t *testing.T) {
	t.Parallel()
	// The default latency is long so that the upper bounds, which tell a
	// query's latency from the default, leave 1.5 s for a loaded machine
	// (CI runs every package at once on two cores): 250 ms did not.
	const latency = 3 * time.Second
	s := start(t, Options{Listen: "127.0.0.1:0", Latency: latency})
	h1, _ := clients(t)
	cases := []struct {
		query    string
		min, max time.Duration
	}{
		{"", latency, 30 * time.Second},
		{"?latency=0s", 0, latency / 2},
		// Replaces the default rather than adding to it.
		{"?latency=400ms", 400 * time.Millisecond, latency / 2},
	}
	for _, tc := range cases {
		t.Run("query="+tc.query, func(t *testing.T) {
			t0 := time.Now()
			resp, err := h1.Get(s.URL() + "/slow" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			decode(t, resp)
			if d := time.Since(t0); d < tc.min || d > tc.max {
				t.Fatalf("answered after %v, want %v..%v", d, tc.min, tc.max)
			}
		})
	}
}

// TestFailures counts failed answers over many sequential requests.
func TestFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		opts         Options
		n            int
		minF, maxF   int
		wantStatus   int
		wantSequence string // for FailEvery: the exact pattern of the first 10 (F = failed)
	}{
		{"every 5th", Options{FailEvery: 5}, 100, 20, 20, 503, "....F....F"},
		{"every 2nd with 500", Options{FailEvery: 2, FailStatus: 500}, 50, 25, 25, 500, ".F.F.F.F.F"},
		{"rate 0.2 seeded", Options{FailRate: 0.2, Seed: 7}, 1000, 170, 230, 503, ""},
		{"rate 0", Options{}, 200, 0, 0, 0, ".........."},
		{"rate 1", Options{FailRate: 1, FailStatus: 502}, 50, 50, 50, 502, "FFFFFFFFFF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Listen = "127.0.0.1:0"
			s := start(t, tc.opts)
			h1, _ := clients(t)
			failed := 0
			var seq strings.Builder
			for i := range tc.n {
				resp, err := h1.Get(fmt.Sprintf("%s/req/%d", s.URL(), i))
				if err != nil {
					t.Fatal(err)
				}
				body := decode(t, resp)
				if body.Status != resp.StatusCode {
					t.Fatalf("request %d: JSON status %d, HTTP status %d", i, body.Status, resp.StatusCode)
				}
				mark := "."
				if resp.StatusCode != 200 {
					if resp.StatusCode != tc.wantStatus {
						t.Fatalf("request %d failed with %d, want %d", i, resp.StatusCode, tc.wantStatus)
					}
					failed++
					mark = "F"
				}
				if i < 10 {
					seq.WriteString(mark)
				}
			}
			if failed < tc.minF || failed > tc.maxF {
				t.Fatalf("%d of %d failed, want %d..%d", failed, tc.n, tc.minF, tc.maxF)
			}
			if tc.wantSequence != "" && seq.String() != tc.wantSequence {
				t.Fatalf("first ten outcomes %s, want %s", seq.String(), tc.wantSequence)
			}
			if s.Requests() != int64(tc.n) {
				t.Fatalf("Requests() = %d, want %d", s.Requests(), tc.n)
			}
		})
	}
}

// TestFailRateRepeats: the same seed gives the same outcomes, run after run.
func TestFailRateRepeats(t *testing.T) {
	t.Parallel()
	outcomes := func(seed uint64) string {
		s := start(t, Options{Listen: "127.0.0.1:0", FailRate: 0.3, Seed: seed})
		h1, _ := clients(t)
		var b strings.Builder
		for range 60 {
			resp, err := h1.Get(s.URL())
			if err != nil {
				t.Fatal(err)
			}
			decode(t, resp)
			b.WriteString(map[bool]string{true: "F", false: "."}[resp.StatusCode != 200])
		}
		return b.String()
	}
	a, b, c := outcomes(42), outcomes(42), outcomes(43)
	if a != b {
		t.Fatalf("seed 42 gave different outcomes:\n%s\n%s", a, b)
	}
	if a == c {
		t.Fatalf("seeds 42 and 43 gave the same outcomes %s", a)
	}
}

func TestTCPEcho(t *testing.T) {
	t.Parallel()
	s := start(t, Options{TCPEcho: "127.0.0.1:0"})
	for _, size := range []int{1, 4096, 1 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			t.Parallel()
			data := make([]byte, size)
			rand.Read(data)
			conn, err := net.Dial("tcp", s.TCPAddr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			// Write concurrently: the echo fills the socket buffers long
			// before 1 MiB has been written.
			werr := make(chan error, 1)
			go func() {
				_, err := conn.Write(data)
				if err == nil {
					err = conn.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("echoed %d bytes, want the %d sent, identical", len(got), len(data))
			}
		})
	}
}

func TestUDPEcho(t *testing.T) {
	t.Parallel()
	s := start(t, Options{UDPEcho: "127.0.0.1:0"})
	conn, err := net.Dial("udp", s.UDPAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 65535)
	for _, msg := range []string{"a", "hello udp", strings.Repeat("z", 60000)} {
		t.Run(fmt.Sprintf("%d bytes", len(msg)), func(t *testing.T) {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if string(buf[:n]) != msg {
				t.Fatalf("echoed %d bytes, want the %d sent", n, len(msg))
			}
		})
	}
}

// TestUpgradeEcho speaks raw HTTP/1.1: an Upgrade request gets 101 and the
// connection then echoes bytes, including ones sent with the request head.
func TestUpgradeEcho(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Listen: "127.0.0.1:0"})
	conn, err := net.Dial("tcp", s.HTTPAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: web\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "websocket" || resp.Header.Get(HeaderName) != "web" {
		t.Fatalf("answer %d %v, want 101 with Upgrade: websocket", resp.StatusCode, resp.Header)
	}
	io.WriteString(conn, "+late")
	conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "early+late" {
		t.Fatalf("echoed %q, want %q", got, "early+late")
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name string
		opts Options
		want string
	}{
		{"nothing to listen on", Options{}, "no listen address"},
		{"fail rate above 1", Options{Listen: "127.0.0.1:0", FailRate: 1.5}, "fail rate 1.5"},
		{"negative fail every", Options{Listen: "127.0.0.1:0", FailEvery: -1}, "fail every -1"},
		{"bad fail status", Options{Listen: "127.0.0.1:0", FailStatus: 700}, "fail status 700"},
		// HTTP, gRPC and TCP bind before UDP fails: they must be released
		// (the goroutine leak check at the end of the package proves no
		// server was started).
		{"busy port", Options{Listen: "127.0.0.1:0", GRPCListen: "127.0.0.1:0", TCPEcho: "127.0.0.1:0", UDPEcho: busy.LocalAddr().String()},
			"udp echo listen " + busy.LocalAddr().String()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(t.Context(), tc.opts)
			if err == nil {
				s.Close()
				t.Fatalf("Start succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestGracefulShutdown: a request in flight when shutdown starts completes;
// afterwards nothing listens. Cancelling Start's context shuts down too.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"Shutdown", "context"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			s, err := Start(ctx, Options{Name: "web", Listen: "127.0.0.1:0", TCPEcho: "127.0.0.1:0", Latency: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			h1, _ := clients(t)
			var wg sync.WaitGroup
			var status int
			var reqErr error
			wg.Go(func() {
				resp, err := h1.Get(s.URL() + "/inflight")
				if err != nil {
					reqErr = err
					return
				}
				status = decode(t, resp).Status
			})
			// Wait until the request is being served, then stop.
			deadline := time.Now().Add(5 * time.Second)
			for s.Requests() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if how == "Shutdown" {
				sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer scancel()
				if err := s.Shutdown(sctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
			} else {
				cancel()
			}
			select {
			case <-s.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("server not done 10s after shutdown began")
			}
			wg.Wait()
			if reqErr != nil || status != 200 {
				t.Fatalf("in-flight request: status %d err %v, want 200", status, reqErr)
			}
			for _, a := range []net.Addr{s.HTTPAddr, s.TCPAddr} {
				if c, err := net.DialTimeout("tcp", a.String(), time.Second); err == nil {
					c.Close()
					t.Fatalf("%s still accepts after shutdown", a)
				}
			}
		})
	}
}
