package proxy

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestBatchConn: what HTTP/2 relies on when its writes return before the
// kernel has the bytes: order, a sticky error, nothing lost at Close, and
// a writer held back when too much is queued.
func TestBatchConn(t *testing.T) {
	t.Run("concurrent writers keep their order", func(t *testing.T) {
		a, b := tcpPair(t)
		bc := newBatchConn(a)
		const writers, each = 20, 200
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				var rec [8]byte
				for i := range each {
					binary.BigEndian.PutUint32(rec[:4], uint32(w))
					binary.BigEndian.PutUint32(rec[4:], uint32(i))
					if _, err := bc.Write(rec[:]); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		next := make([]uint32, writers)
		done := make(chan error, 1)
		go func() {
			var rec [8]byte
			for range writers * each {
				if _, err := io.ReadFull(b, rec[:]); err != nil {
					done <- err
					return
				}
				w, i := binary.BigEndian.Uint32(rec[:4]), binary.BigEndian.Uint32(rec[4:])
				if i != next[w] {
					done <- io.ErrUnexpectedEOF
					return
				}
				next[w]++
			}
			done <- nil
		}()
		wg.Wait()
		if err := <-done; err != nil {
			t.Fatalf("records out of order or lost: %v (next %v)", err, next)
		}
	})
	t.Run("close sends what is queued", func(t *testing.T) {
		a, b := tcpPair(t)
		bc := newBatchConn(a)
		payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		got := make(chan []byte, 1)
		go func() {
			all, _ := io.ReadAll(b)
			got <- all
		}()
		for off := 0; off < len(payload); off += 16 << 10 {
			if _, err := bc.Write(payload[off : off+16<<10]); err != nil {
				t.Fatal(err)
			}
		}
		bc.Close()
		if all := <-got; !bytes.Equal(all, payload) {
			t.Fatalf("peer read %d bytes, want the %d written", len(all), len(payload))
		}
	})
	t.Run("a write error sticks", func(t *testing.T) {
		a, b := tcpPair(t)
		bc := newBatchConn(a)
		b.Close()
		deadline := time.Now().Add(5 * time.Second)
		var err error
		for err == nil && time.Now().Before(deadline) {
			_, err = bc.Write(make([]byte, 4096))
		}
		if err == nil {
			t.Fatal("writing to a closed peer never failed")
		}
		if _, err2 := bc.Write([]byte("x")); err2 == nil {
			t.Fatal("a write after the failure succeeded")
		}
		bc.Close()
	})
	t.Run("a peer that does not read holds writers back", func(t *testing.T) {
		a, b := net.Pipe() // unbuffered: nothing leaves until b reads
		defer b.Close()
		bc := newBatchConn(a)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			for range 4 * maxBatchPending / 4096 {
				if _, err := bc.Write(make([]byte, 4096)); err != nil {
					return
				}
			}
		}()
		select {
		case <-wrote:
			t.Fatal("queued four times the bound without a reader")
		case <-time.After(200 * time.Millisecond):
		}
		go io.Copy(io.Discard, b)
		select {
		case <-wrote:
		case <-time.After(5 * time.Second):
			t.Fatal("writers stayed blocked after the peer started reading")
		}
		bc.Close()
	})
}
