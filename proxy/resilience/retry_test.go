package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestIsRetryable(t *testing.T) {
	t.Parallel()
	optIn := http.Header{RetryableHeader: {"true"}}
	cases := []struct {
		method string
		header http.Header
		want   bool
	}{
		{http.MethodGet, nil, true},
		{http.MethodHead, nil, true},
		{http.MethodOptions, nil, true},
		{http.MethodPut, nil, true},
		{http.MethodDelete, nil, true},
		{http.MethodTrace, nil, true},
		{http.MethodPost, nil, false},
		{http.MethodPatch, nil, false},
		{http.MethodConnect, nil, false},
		{http.MethodPost, optIn, true},
		{http.MethodPatch, http.Header{"X-Causeway-Retryable": {" TRUE "}}, true},
		{http.MethodPost, http.Header{RetryableHeader: {"yes"}}, false},
		{http.MethodPost, http.Header{RetryableHeader: {"false"}}, false},
		{"get", nil, false}, // methods are case-sensitive (RFC 9110 §9.1)
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %v", tc.method, tc.header), func(t *testing.T) {
			t.Parallel()
			if got := IsRetryable(tc.method, tc.header); got != tc.want {
				t.Fatalf("IsRetryable(%q, %v) = %v, want %v", tc.method, tc.header, got, tc.want)
			}
		})
	}
}

func TestRetryableResponse(t *testing.T) {
	t.Parallel()
	grpcCT := http.Header{"Content-Type": {"application/grpc+proto"}}
	trailersOnly := func(code string) http.Header {
		return http.Header{"Content-Type": {"application/grpc"}, "Grpc-Status": {code}}
	}
	cases := []struct {
		name            string
		status          int
		header, trailer http.Header
		want            bool
	}{
		{"200", 200, nil, nil, false},
		{"404", 404, nil, nil, false},
		{"429 is not a server failure", 429, nil, nil, false},
		{"500", 500, nil, nil, true},
		{"501 fails everywhere", 501, nil, nil, false},
		{"502", 502, nil, nil, true},
		{"503", 503, nil, nil, true},
		{"504", 504, nil, nil, true},
		{"505 fails everywhere", 505, nil, nil, false},
		{"599", 599, nil, nil, true},
		{"grpc UNAVAILABLE in trailers", 200, grpcCT, http.Header{"Grpc-Status": {"14"}}, true},
		{"grpc UNAVAILABLE trailers-only", 200, trailersOnly("14"), nil, true},
		{"grpc OK", 200, grpcCT, http.Header{"Grpc-Status": {"0"}}, false},
		{"grpc INTERNAL may have run", 200, grpcCT, http.Header{"Grpc-Status": {"13"}}, false},
		{"grpc DEADLINE_EXCEEDED", 200, trailersOnly("4"), nil, false},
		{"grpc 503 without status is classified by grpc-status only", 503, grpcCT, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, tr := tc.header, tc.trailer
			if h == nil {
				h = http.Header{}
			}
			if tr == nil {
				tr = http.Header{}
			}
			if got := RetryableResponse(tc.status, h, tr); got != tc.want {
				t.Fatalf("RetryableResponse(%d, %v, %v) = %v, want %v", tc.status, h, tr, got, tc.want)
			}
		})
	}
}

// TestRetryableError uses real socket errors from loopback where it can.
func TestRetryableError(t *testing.T) {
	t.Parallel()
	// A port that was just free: connecting to it is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, refused := net.Dial("tcp", closed)
	if refused == nil {
		t.Fatalf("dial %s after closing it succeeded", closed)
	}

	// A server that resets the connection after reading the request.
	rst, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	go func() {
		c, err := rst.Accept()
		if err != nil {
			return
		}
		_, _ = c.Read(make([]byte, 64))
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}()
	client := &http.Client{Timeout: 5 * time.Second}
	_, reset := client.Get("http://" + rst.Addr().String() + "/")
	if reset == nil {
		t.Fatal("GET against a resetting server succeeded")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused (real dial)", refused, true},
		{"connection reset or EOF (real server)", reset, true},
		{"wrapped ECONNRESET", fmt.Errorf("upstream web: %w", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("i/o timeout")}, true},
		{"caller canceled", fmt.Errorf("roundtrip: %w", ctx.Err()), false},
		{"route timeout", context.DeadlineExceeded, false},
		{"read timeout after sending", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, false},
		{"other", errors.New("tls: bad certificate"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := RetryableError(tc.err); got != tc.want {
				t.Fatalf("RetryableError(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
