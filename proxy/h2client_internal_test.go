package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fakeH2 is an h2c server written with the Framer, so a test can make it
// misbehave frame by frame: answer(n) says what to do with the n-th
// request HEADERS it reads (counted over all connections).
type fakeH2 struct {
	ln     net.Listener
	answer func(n int) string // "ok", "goaway", "refuse"
	reqs   atomic.Int32
	conns  atomic.Int32
	wg     sync.WaitGroup
}

func startFakeH2(t *testing.T, answer func(n int) string) *fakeH2 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeH2{ln: ln, answer: answer}
	var mu sync.Mutex
	var open []net.Conn
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			f.wg.Go(func() { f.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeH2) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, br)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10}) != nil {
		return
	}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for {
		fm, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch fm := fm.(type) {
		case *http2.SettingsFrame:
			if !fm.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.MetaHeadersFrame:
			switch f.answer(int(f.reqs.Add(1))) {
			case "goaway":
				// Processed nothing: the client may send it again.
				fr.WriteGoAway(0, http2.ErrCodeNo, nil)
				return
			case "refuse":
				fr.WriteRSTStream(fm.StreamID, http2.ErrCodeRefusedStream)
			default:
				hbuf.Reset()
				enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
				enc.WriteField(hpack.HeaderField{Name: "x-path", Value: fm.PseudoValue("path")})
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: fm.StreamID, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true})
			}
		}
	}
}

// TestH2PoolResendsUnprocessed: a request the server did not process
// (GOAWAY before it, REFUSED_STREAM) goes again, on a fresh connection
// after a GOAWAY, while one whose body cannot be replayed fails.
func TestH2PoolResendsUnprocessed(t *testing.T) {
	cases := []struct {
		name      string
		first     string // what the server does with the first request
		body      io.Reader
		wantErr   error
		wantConns int32
	}{
		{name: "goaway before the stream", first: "goaway", wantConns: 2},
		{name: "refused stream", first: "refuse", wantConns: 1},
		{name: "unreplayable body is not resent", first: "refuse", body: io.MultiReader(bytes.NewReader([]byte("x"))), wantErr: errH2Unprocessed, wantConns: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFakeH2(t, func(n int) string {
				if n == 1 {
					return tc.first
				}
				return "ok"
			})
			pool := newH2Pool((&net.Dialer{Timeout: time.Second}).DialContext)
			defer pool.closeIdle()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+srv.ln.Addr().String()+"/p", tc.body)
			if tc.body != nil {
				req.GetBody = nil // a stream: nothing to replay it from
			}
			resp, err := pool.roundTrip(req, time.Now().Add(3*time.Second))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("X-Path") != "/p" {
					t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
				}
			}
			if got := srv.conns.Load(); got != tc.wantConns {
				t.Fatalf("server saw %d connections, want %d", got, tc.wantConns)
			}
		})
	}
}
