package proxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestRawIO: raw reads and writes behave as net.Conn's do: data intact
// across many EAGAIN waits (a write far larger than the socket buffers),
// EOF when the peer closes, deadlines, and a Close from elsewhere.
func TestRawIO(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, a, b net.Conn)
	}{
		{"8 MiB write waits for the reader", func(t *testing.T, a, b net.Conn) {
			data := bytes.Repeat([]byte("0123456789abcdef"), 8<<16)
			done := make(chan error, 1)
			go func() {
				_, err := newRawIO(a).Write(data)
				a.Close()
				done <- err
			}()
			got, err := io.ReadAll(newRawIO(b))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, err %v; want %d intact", len(got), err, len(data))
			}
			if err := <-done; err != nil {
				t.Fatalf("write: %v", err)
			}
		}},
		{"EOF after the peer closes", func(t *testing.T, a, b net.Conn) {
			a.Write([]byte("hi"))
			a.Close()
			r := newRawIO(b)
			buf := make([]byte, 8)
			n, err := r.Read(buf)
			if n != 2 || err != nil {
				t.Fatalf("first read %d, %v", n, err)
			}
			if _, err := r.Read(buf); err != io.EOF {
				t.Fatalf("second read err %v, want io.EOF", err)
			}
		}},
		{"read deadline", func(t *testing.T, _, b net.Conn) {
			b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			_, err := newRawIO(b).Read(make([]byte, 8))
			var ne net.Error
			if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err %v, want a timeout", err)
			}
		}},
		{"Close ends a waiting read", func(t *testing.T, _, b net.Conn) {
			go func() {
				time.Sleep(50 * time.Millisecond)
				b.Close()
			}()
			if _, err := newRawIO(b).Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("err %v, want net.ErrClosed", err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tcpPair(t)
			if _, ok := newRawIO(a).(*rawIO); !ok {
				t.Fatal("a TCP connection did not get raw I/O")
			}
			tc.run(t, a, b)
		})
	}
}
