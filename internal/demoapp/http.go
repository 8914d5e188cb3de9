package demoapp

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Response is the JSON body of every HTTP answer.
type Response struct {
	Name    string      `json:"name"`
	Version string      `json:"version"`
	Method  string      `json:"method"`
	Path    string      `json:"path"`
	Host    string      `json:"host"`
	Proto   string      `json:"proto"`
	Headers http.Header `json:"headers"` // every request header, canonical keys
	// BodyBytes is the length of the request body read, so tests can check
	// that a body crossed the proxy whole.
	BodyBytes int64 `json:"body_bytes"`
	Status    int   `json:"status"`
}

// Header names the demo app sets on every HTTP answer, so tests can count
// backends without decoding the body.
const (
	HeaderName    = "X-Demo-Name"
	HeaderVersion = "X-Demo-Version"
)

func (s *Server) newHTTPServer() *http.Server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	// HTTP/2 with prior knowledge on the same port: the proxy's h2c and
	// gRPC upstreams, and gRPC clients, connect here without TLS.
	protos.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		Protocols:         &protos,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		s.grpcSrv.ServeHTTP(w, r)
		return
	}
	if r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" && headerHasToken(r.Header, "Connection", "upgrade") {
		s.serveUpgrade(w, r)
		return
	}
	s.requests.Add(1)
	n, _ := io.Copy(io.Discard, r.Body)

	status := http.StatusOK
	latency := s.opts.Latency
	q := r.URL.Query()
	if v := q.Get("latency"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			http.Error(w, fmt.Sprintf("demo-app: query latency=%q: %v", v, err), http.StatusBadRequest)
			return
		}
		latency = d
	}
	if v := q.Get("status"); v != "" {
		code, err := strconv.Atoi(v)
		if err != nil || code < 200 || code > 599 {
			http.Error(w, fmt.Sprintf("demo-app: query status=%q: want an HTTP status 200-599", v), http.StatusBadRequest)
			return
		}
		status = code
	}
	if s.fail.fail() {
		status = s.opts.FailStatus
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client (or the proxy's timeout) gave up
		}
	}
	resp := Response{
		Name:      s.opts.Name,
		Version:   s.opts.Version,
		Method:    r.Method,
		Path:      r.URL.Path,
		Host:      r.Host,
		Proto:     r.Proto,
		Headers:   r.Header,
		BodyBytes: n,
		Status:    status,
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(HeaderName, s.opts.Name)
	h.Set(HeaderVersion, s.opts.Version)
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(&resp)
}

// serveUpgrade answers 101 with the requested protocol and then echoes raw
// bytes: enough to test that a proxy tunnels Upgrade (WebSocket) connections
// without the demo app having to speak WebSocket framing.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "demo-app: upgrade needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		s.log.Warn("demo-app upgrade hijack", "err", err)
		return
	}
	s.conns.add(conn)
	defer func() {
		conn.Close()
		s.conns.remove(conn)
	}()
	fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n%s: %s\r\n\r\n",
		sanitizeToken(r.Header.Get("Upgrade")), HeaderName, sanitizeToken(s.opts.Name))
	if err := rw.Flush(); err != nil {
		return
	}
	// Bytes the client sent after the request head may already sit in the
	// bufio.Reader: echo from it, not from conn.
	_, _ = echo(conn, rw.Reader)
}

// echo copies r to w until EOF, then half-closes w if it can so the peer
// sees the end of the echo.
func echo(w net.Conn, r io.Reader) (int64, error) {
	n, err := io.Copy(w, r)
	if cw, ok := w.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	return n, err
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// sanitizeToken keeps a header value from injecting lines into the raw 101.
func sanitizeToken(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, v)
}
