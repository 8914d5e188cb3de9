package harness

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Body is what the benchmark upstream answers to every HTTP request: small
// and fixed, so every system proxies the same bytes and the upstream costs
// as little as it can (a JSON echo would charge the upstream, not the proxy).
var Body = []byte("causeway bench upstream\n")

// UpstreamHandler answers Body with explicit headers (no content sniffing,
// no chunking) to any method and path.
func UpstreamHandler() http.Handler {
	length := strconv.Itoa(len(Body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"text/plain"}
		h["Content-Length"] = []string{length}
		// Drain what a client sent so the connection stays reusable.
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(Body)
	})
}

// ServeUpstream serves UpstreamHandler on httpLn (HTTP/1.1 and h2c with prior
// knowledge, the same listener for both) and the TCP sink on tcpLn until ctx
// ends. It owns the goroutines it starts and returns when they are done.
func ServeUpstream(ctx context.Context, httpLn, tcpLn net.Listener) error {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           UpstreamHandler(),
		Protocols:         &p,
		ReadHeaderTimeout: 10 * time.Second,
		// Proxies keep pools of idle connections; never cut them mid-run.
		IdleTimeout: 5 * time.Minute,
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(httpLn) }()
	go func() { errc <- serveSink(ctx, tcpLn) }()
	<-ctx.Done()
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	_ = tcpLn.Close()
	var first error
	for range 2 {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) && first == nil {
			first = err
		}
	}
	return first
}

// serveSink accepts connections; on each it reads an 8-byte big-endian
// length N, then N bytes, and answers the count it read as 8 bytes: the far
// end of the TCP bulk load. The length prefix means no proxy needs to carry a
// half-close for the client to learn that every byte arrived.
func serveSink(ctx context.Context, ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			var hdr [8]byte
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			want := int64(binary.BigEndian.Uint64(hdr[:]))
			n, _ := io.CopyBuffer(io.Discard, io.LimitReader(c, want), make([]byte, 256<<10))
			binary.BigEndian.PutUint64(hdr[:], uint64(n))
			_, _ = c.Write(hdr[:])
		}()
	}
}
