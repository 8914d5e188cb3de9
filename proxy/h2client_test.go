package proxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy"
	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// h2Backend is an h2c app that counts the connections it accepted.
type h2Backend struct {
	addr  string
	conns atomic.Int32
}

func newH2Backend(t *testing.T, h http.Handler) *h2Backend {
	t.Helper()
	b := &h2Backend{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	s := &http.Server{Handler: h, Protocols: &protos, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.conns.Add(1)
		}
	}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	b.addr = ln.Addr().String()
	return b
}

// h2Path starts the sidecars in front of an h2c backend for an http2
// service port: hops 1 is a client sidecar's fixed port straight to the
// app, hops 2 adds the server sidecar's inbound hop (preamble, h2c to the
// app). It returns the address the client dials.
func h2Path(t *testing.T, hops int, backend string, pol proxy.Policy) string {
	t.Helper()
	svc := proxytest.Service("shop/h2", 80, spec.ProtocolHTTP2)
	if hops == 1 {
		svc.Endpoints = []spec.Endpoint{proxytest.AppEndpoint(t, backend, 80)}
	} else {
		svc.Ports[0].TargetPort = proxytest.Port(t, backend)
		server := startProxy(t, &proxy.Bootstrap{
			Inbound: proxy.InboundConfig{Listen: "127.0.0.1:0"},
			Config:  proxytest.Compile(t, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, spec.Node{ID: "server", Services: []spec.Key{svc.Key}}),
		})
		svc.Endpoints = []spec.Endpoint{proxytest.SidecarEndpoint(t, server.InboundAddr())}
	}
	client := startProxy(t, &proxy.Bootstrap{
		Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/h2", Port: 80, Listen: "127.0.0.1:0"}}},
		Policy:   pol,
		Config:   proxytest.Compile(t, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, spec.Node{ID: "client"}),
	})
	return client.FixedAddr("shop/h2", 80).String()
}

// h2cClient speaks h2c with prior knowledge over one connection.
func h2cClient(t *testing.T) *http.Client {
	t.Helper()
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestH2ManyStreamsOneConnection: hundreds of concurrent streams through
// the sidecars share a few upstream connections and every answer comes
// back to the stream that asked.
func TestH2ManyStreamsOneConnection(t *testing.T) {
	for _, hops := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d hops", hops), func(t *testing.T) {
			be := newH2Backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(time.Millisecond) // keep streams open at once
				io.WriteString(w, r.URL.Path)
			}))
			addr := h2Path(t, hops, be.addr, proxy.Policy{})
			c := h2cClient(t)
			const n = 300
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					path := fmt.Sprintf("/s/%d", i)
					resp, err := c.Get("http://" + addr + path)
					if err != nil {
						errs <- err
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || string(b) != path {
						errs <- fmt.Errorf("%s: %d %q %v", path, resp.StatusCode, b, err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// The app's streams limit is 250 and we assume 100 until its
			// SETTINGS arrive: a burst of 300 fits in three connections.
			if got := be.conns.Load(); got < 1 || got > 3 {
				t.Fatalf("app accepted %d connections for %d streams, want 1..3", got, n)
			}
		})
	}
}

// TestH2BodiesTrailersAndResets checks what a proxy must carry intact:
// large bodies both ways (past every flow-control window), trailers
// announced and not, and the end of a stream in either direction.
func TestH2BodiesTrailersAndResets(t *testing.T) {
	released := make(chan struct{})
	var cancelled sync.Map // path -> chan struct{}, closed when the app saw its request end
	seen := func(path string) chan struct{} {
		ch, _ := cancelled.LoadOrStore(path, make(chan struct{}))
		return ch.(chan struct{})
	}
	be := newH2Backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/echo":
			w.Header().Set("Content-Type", "application/octet-stream")
			io.Copy(w, r.Body)
		case r.URL.Path == "/trailers":
			w.Header().Set("Trailer", "X-Announced")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Announced", "a")
			w.Header().Set(http.TrailerPrefix+"X-Late", "b")
		case strings.HasPrefix(r.URL.Path, "/hang"):
			// Streams one chunk, then holds the stream until the proxy
			// resets it (or the test ends).
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(seen(r.URL.Path))
			case <-released:
			}
		case r.URL.Path == "/abort":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // resets the stream
		case r.URL.Path == "/slow":
			select {
			case <-r.Context().Done():
				close(seen(r.URL.Path))
			case <-released:
			}
		}
	}))
	t.Cleanup(func() { close(released) })

	for _, hops := range []int{1, 2} {
		// The short route timeout is for the 504 case only: a 9 MiB echo
		// under -race on a busy machine can take longer to answer.
		url := "http://" + h2Path(t, hops, be.addr, proxy.Policy{})
		shortURL := "http://" + h2Path(t, hops, be.addr, proxy.Policy{Timeout: proxy.Duration(300 * time.Millisecond)})
		c := h2cClient(t)
		t.Run(fmt.Sprintf("%d hops", hops), func(t *testing.T) {
			t.Run("large bodies both ways", func(t *testing.T) {
				payload := make([]byte, 9<<20+123) // > the 4 MiB stream window, not a frame multiple
				rand.Read(payload)
				resp, err := c.Post(url+"/echo", "application/octet-stream", bytes.NewReader(payload))
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("echo: %d %v", resp.StatusCode, err)
				}
				if sha256.Sum256(got) != sha256.Sum256(payload) {
					t.Fatalf("echo: got %d bytes, want the %d sent", len(got), len(payload))
				}
			})
			t.Run("trailers announced and not", func(t *testing.T) {
				resp, err := c.Get(url + "/trailers")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "body" || resp.Trailer.Get("X-Announced") != "a" || resp.Trailer.Get("X-Late") != "b" {
					t.Fatalf("body %q trailers %v, want body and X-Announced=a X-Late=b", b, resp.Trailer)
				}
			})
			t.Run("client cancel resets the app's stream", func(t *testing.T) {
				path := fmt.Sprintf("/hang/%d", hops)
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", url+path, nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				first := make([]byte, 5)
				if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
					t.Fatalf("first chunk %q %v", first, err)
				}
				cancel()
				resp.Body.Close()
				select {
				case <-seen(path):
				case <-time.After(5 * time.Second):
					t.Fatal("the app's request did not end after the client cancelled")
				}
			})
			t.Run("app reset reaches the client", func(t *testing.T) {
				// The reset may overtake the response headers (they wait
				// in the sidecar's buffer for the first body bytes): an
				// error either at the request or in the body is right.
				resp, err := c.Get(url + "/abort")
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err == nil {
					t.Fatalf("a stream the app reset read as a whole response (%d %v)", resp.StatusCode, resp.Header)
				}
			})
			t.Run("route timeout answers 504 and resets the app's stream", func(t *testing.T) {
				path := "/slow"
				cancelled.Delete(path) // the other hop count used it too
				resp, err := c.Get(shortURL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusGatewayTimeout {
					t.Fatalf("status %d, want 504", resp.StatusCode)
				}
				select {
				case <-seen(path):
				case <-time.After(5 * time.Second):
					t.Fatal("the app's request did not end after the timeout")
				}
			})
		})
	}
}

// TestH2ServerEdges: the sidecar's own HTTP/2 server beside net/http's:
// HTTP/1.1 on an http2 port still works (net/http takes it), request
// trailers reach the app, and Close does not wait on a connection that
// never sent its preface or on an idle HTTP/2 one.
func TestH2ServerEdges(t *testing.T) {
	be := newH2Backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("X-Trailer", r.Trailer.Get("X-Sum"))
		w.Write(b)
	}))
	for _, hops := range []int{1, 2} {
		addr := h2Path(t, hops, be.addr, proxy.Policy{})
		t.Run(fmt.Sprintf("%d hops", hops), func(t *testing.T) {
			t.Run("HTTP/1.1 on an http2 port", func(t *testing.T) {
				code, _, body := do(t, client(t), mustReq(t, "GET", "http://"+addr+"/h1", nil))
				if code != 200 || body != "" {
					t.Fatalf("got %d %q", code, body)
				}
			})
			t.Run("request trailers reach the app", func(t *testing.T) {
				pr, pw := io.Pipe()
				req, _ := http.NewRequest("POST", "http://"+addr+"/t", pr)
				req.Trailer = http.Header{"X-Sum": nil}
				go func() {
					io.WriteString(pw, "payload")
					req.Trailer.Set("X-Sum", "42")
					pw.Close()
				}()
				resp, err := h2cClient(t).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "payload" || resp.Header.Get("X-Trailer") != "42" || resp.Header.Get("X-Proto") != "HTTP/2.0" {
					t.Fatalf("got %q %v, want the payload and trailer X-Sum=42 at the app over HTTP/2", b, resp.Header)
				}
			})
		})
	}
	t.Run("Expect 100-continue is answered at once", func(t *testing.T) {
		addr := h2Path(t, 1, be.addr, proxy.Policy{})
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos, ExpectContinueTimeout: 10 * time.Second}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest("POST", "http://"+addr+"/e", strings.NewReader("body"))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "body" || time.Since(start) > 5*time.Second {
			t.Fatalf("got %q after %v, want the body well before the 10 s continue timeout", b, time.Since(start))
		}
	})
	t.Run("close with a silent and an idle connection", func(t *testing.T) {
		svc := proxytest.Service("shop/h2", 80, spec.ProtocolHTTP2, proxytest.AppEndpoint(t, be.addr, 80))
		b := &proxy.Bootstrap{
			Outbound: proxy.OutboundConfig{Ports: []proxy.FixedPort{{Service: "shop/h2", Port: 80, Listen: "127.0.0.1:0"}}},
			Config:   proxytest.Compile(t, spec.Input{Mode: spec.ModePermissive, Services: []spec.Service{svc}}, spec.Node{ID: "client"}),
		}
		p := proxy.New(b, proxy.Options{Logger: quiet})
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		addr := p.FixedAddr("shop/h2", 80).String()
		silent, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		c := h2cClient(t)
		resp, err := c.Get("http://" + addr + "/idle")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		p.Close()
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Close took %v with a silent and an idle connection open", d)
		}
	})
}
