package proxy

import (
	"net"
	"runtime"
	"sync"
	"time"
)

// batchConn gathers the writes of an HTTP/2 connection and hands them to
// the kernel together.
//
// Why: net/http's HTTP/2 server and Transport flush after nearly every
// frame (the server after each write batch of its serve loop, the
// Transport after each request's HEADERS), and each flush is a write
// system call. Under load many streams share one connection, so many such
// flushes are ready at about the same moment; the kernel's cost of a
// loopback TCP write (segment, softirq delivery to the peer, wake-up) is
// paid per call, not per byte. batchConn's Write copies the bytes into a
// pending buffer and returns; one flusher goroutine, started when the
// buffer goes from empty to non-empty, writes everything pending in one
// call and loops until nothing is left. Writes that arrive while a call is
// in the kernel, or before the flusher first runs (on a busy core, after
// the goroutines that are runnable now), ride in the next call.
//
// Ordering is kept (one buffer, one flusher at a time). A write error is
// sticky: the Write that meets it, and every later one, returns it, as
// net/http's own sticky-error writers do; HTTP/2 then fails the whole
// connection, so no stream mistakes a lost frame for a delivered one.
// Pending bytes are bounded by maxBatchPending: a writer waits while more
// than that is queued, so a peer that stops reading pushes back as a
// blocking Write would.
//
// Goroutines: the flusher exists only while bytes are pending and ends when
// the buffer is empty or the connection failed; Close waits for it (up to
// batchCloseWait) so the last frames (GOAWAY, RST_STREAM) are not lost.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	cond     sync.Cond // signalled when a flush ends
	pending  []byte
	spare    []byte
	flushing bool
	err      error
	stall    time.Duration // a write that moves nothing for this long fails the connection
	closeBy  time.Time     // set by Close: the last flush must end by then
}

// maxBatchPending bounds the bytes queued ahead of the kernel per
// connection: one 16 KiB DATA frame of a few streams, plus headers.
const maxBatchPending = 64 << 10

// batchCloseWait bounds how long Close waits for pending bytes to leave.
const batchCloseWait = 2 * time.Second

// h2WriteStall is how long one write to the kernel may wait. A peer that
// stops reading fills its TCP window, the write blocks, and without a bound
// every stream on the connection would wait on it forever, holding its
// handler goroutine and pooled buffers. 64 KiB in 30 s is 2 KiB/s: slower
// than any client worth serving. Like x/net's WriteByteTimeout, it is a
// stall bound, not a bound on a long download, which makes progress.
const h2WriteStall = 30 * time.Second

func newBatchConn(c net.Conn) *batchConn {
	b := &batchConn{Conn: c, stall: h2WriteStall}
	b.cond.L = &b.mu
	return b
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	for b.err == nil && len(b.pending) >= maxBatchPending {
		b.cond.Wait()
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	b.pending = append(b.pending, p...)
	if !b.flushing {
		b.flushing = true
		go b.flush()
	}
	b.mu.Unlock()
	return len(p), nil
}

// flush writes whatever is pending until nothing is. Two buffers swap so
// writers fill one while the kernel copies the other.
func (b *batchConn) flush() {
	// A goroutine started by go runs next on this P, before the ones
	// already runnable: without this yield it would write each frame on
	// its own as soon as the writer blocked. Yielding lets the runnable
	// stream handlers and readers add theirs first. With nothing else
	// runnable it returns at once.
	runtime.Gosched()
	b.mu.Lock()
	for len(b.pending) > 0 && b.err == nil {
		out := b.pending
		b.pending = b.spare[:0]
		deadline := time.Now().Add(b.stall)
		if !b.closeBy.IsZero() && b.closeBy.Before(deadline) {
			deadline = b.closeBy
		}
		// A deadline is a timer update in the runtime's poller, not a
		// system call. It is set under mu so Close's shorter one is not
		// overwritten. After a timeout the connection is failed, not
		// resumed: TLS cannot go on after a write timed out mid-record.
		_ = b.Conn.SetWriteDeadline(deadline)
		b.mu.Unlock()
		_, err := b.Conn.Write(out)
		b.mu.Lock()
		if cap(out) <= 2*maxBatchPending {
			b.spare = out[:0]
		}
		if err != nil {
			// Nothing more can be sent: close now so the reader ends and
			// fails every stream, rather than waiting for a writer to
			// meet the error.
			b.err = err
			_ = b.Conn.Close()
		}
		b.cond.Broadcast()
	}
	b.flushing = false
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Close lets pending bytes leave (bounded by batchCloseWait), then closes.
func (b *batchConn) Close() error {
	b.mu.Lock()
	if b.flushing && b.err == nil {
		b.closeBy = time.Now().Add(batchCloseWait)
		_ = b.Conn.SetWriteDeadline(b.closeBy)
		for b.flushing {
			b.cond.Wait()
		}
	}
	if b.err == nil {
		b.err = net.ErrClosed
	}
	b.cond.Broadcast()
	b.mu.Unlock()
	return b.Conn.Close()
}

// h2DefaultFrameSize is SETTINGS_MAX_FRAME_SIZE's initial value; neither
// side of ours advertises another, so it is the largest frame we accept.
const h2DefaultFrameSize = 16384

// growWindow adds a WINDOW_UPDATE's increment to a send window. A window
// past 2^31-1 is a flow-control error (RFC 9113 §6.9.1); false says so and
// leaves the window as it was.
func growWindow(w *int32, inc uint32) bool {
	n := int64(*w) + int64(inc)
	if n > 1<<31-1 {
		return false
	}
	*w = int32(n)
	return true
}
