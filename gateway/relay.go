package gateway

import (
	"crypto/tls"
	"io"
	"net"
	"sync"
)

// bufPool holds relay buffers. 32 KiB: a TLS record is at most 16 KiB of
// payload, so one read rarely fills more than two.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// relay copies bytes both ways between the caller's outer TLS connection
// and the destination's TCP connection until both directions end, and
// returns the bytes caller->destination and destination->caller.
//
// Why no splice: the outer TLS ends here, so its plaintext (the inner TLS
// records) exists only in user space; the destination side stays a
// *net.TCPConn for its half-close. The copies go through pooled buffers,
// and the connections are wrapped so that io.CopyBuffer cannot take
// TCPConn.ReadFrom/WriteTo, whose generic fallbacks allocate a fresh 32 KiB
// buffer per call.
//
// The calling goroutine owns one direction; one goroutine is started for
// the other and has ended when relay returns.
func relay(caller *tls.Conn, dst *net.TCPConn) (in, out int64) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		in = copyPooled(dst, caller)
		// The caller finished sending: FIN to the destination, whose
		// answer may still be flowing.
		_ = dst.CloseWrite()
	}()
	out = copyPooled(caller, dst)
	// close_notify inside the outer TLS: the caller's outer reader sees
	// EOF, the inner TLS it carries has already ended.
	_ = caller.CloseWrite()
	<-done
	return in, out
}

type writerOnly struct{ io.Writer }
type readerOnly struct{ io.Reader }

func copyPooled(dst io.Writer, src io.Reader) int64 {
	bp := bufPool.Get().(*[]byte)
	n, _ := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
	bufPool.Put(bp)
	return n
}
