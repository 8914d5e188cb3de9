package demoapp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func dial(t *testing.T, addr net.Addr) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestGRPC runs the health service, unary echo and the bidi stream against
// both the native gRPC listener and the HTTP port (gRPC over h2c).
func TestGRPC(t *testing.T) {
	t.Parallel()
	s := start(t, Options{Listen: "127.0.0.1:0", GRPCListen: "127.0.0.1:0"})
	for _, port := range []struct {
		name string
		addr net.Addr
	}{{"grpc-listen", s.GRPCAddr}, {"http port h2c", s.HTTPAddr}} {
		t.Run(port.name, func(t *testing.T) {
			t.Parallel()
			cc := dial(t, port.addr)
			ctx := t.Context()

			t.Run("health", func(t *testing.T) {
				for _, svc := range []string{"", EchoService} {
					resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
					if err != nil {
						t.Fatalf("Check(%q): %v", svc, err)
					}
					if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
						t.Fatalf("Check(%q) = %v, want SERVING", svc, resp.GetStatus())
					}
				}
				_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"})
				if status.Code(err) != codes.NotFound {
					t.Fatalf("Check(nope): %v, want NotFound", err)
				}
			})

			t.Run("unary", func(t *testing.T) {
				mctx := metadata.AppendToOutgoingContext(ctx, "x-forwarded-client-cert", "By=spiffe://td/ns/a/sa/b", "x-multi", "1", "x-multi", "2")
				r, err := NewEchoClient(cc).Echo(mctx, "hello")
				if err != nil {
					t.Fatal(err)
				}
				if r.Name != "web" || r.Version != "v2" || r.Message != "hello" {
					t.Fatalf("reply %+v, want web v2 hello", r)
				}
				if r.Metadata["x-forwarded-client-cert"] != "By=spiffe://td/ns/a/sa/b" || r.Metadata["x-multi"] != "1,2" {
					t.Fatalf("reply metadata %v (keys %v), want the sent metadata", r.Metadata, r.MetadataKeys())
				}
			})

			t.Run("bidi stream", func(t *testing.T) {
				st, err := NewEchoClient(cc).EchoStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 20 {
					msg := fmt.Sprintf("m%d", i)
					if err := st.Send(msg); err != nil {
						t.Fatal(err)
					}
					r, err := st.Recv()
					if err != nil {
						t.Fatalf("Recv %d: %v", i, err)
					}
					if r.Message != msg || r.Name != "web" {
						t.Fatalf("reply %d = %+v, want %s from web", i, r, msg)
					}
				}
				if err := st.CloseSend(); err != nil {
					t.Fatal(err)
				}
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					t.Fatalf("Recv after CloseSend: %v, want io.EOF", err)
				}
			})
		})
	}
}

func TestGRPCFailures(t *testing.T) {
	t.Parallel()
	s := start(t, Options{GRPCListen: "127.0.0.1:0", FailEvery: 4})
	cc := dial(t, s.GRPCAddr)
	c := NewEchoClient(cc)
	var got []codes.Code
	for range 8 {
		_, err := c.Echo(t.Context(), "x")
		got = append(got, status.Code(err))
	}
	want := []codes.Code{codes.OK, codes.OK, codes.OK, codes.Unavailable, codes.OK, codes.OK, codes.OK, codes.Unavailable}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("codes %v, want %v", got, want)
	}
	// A stream: the 9th..12th messages, the 12th fails and ends the stream.
	st, err := c.EchoStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := st.Send("s"); err != nil {
			t.Fatal(err)
		}
		_, err := st.Recv()
		if i < 3 && err != nil {
			t.Fatalf("stream message %d: %v", i, err)
		}
		if i == 3 && status.Code(err) != codes.Unavailable {
			t.Fatalf("stream message %d: %v, want UNAVAILABLE", i, err)
		}
	}
}

func TestGRPCLatencyAndDeadline(t *testing.T) {
	t.Parallel()
	s := start(t, Options{GRPCListen: "127.0.0.1:0", Latency: 300 * time.Millisecond})
	c := NewEchoClient(dial(t, s.GRPCAddr))
	cases := []struct {
		name    string
		timeout time.Duration
		want    codes.Code
	}{
		{"deadline shorter than latency", 50 * time.Millisecond, codes.DeadlineExceeded},
		{"deadline longer than latency", 10 * time.Second, codes.OK},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := contextWithTimeout(t, tc.timeout)
			defer cancel()
			t0 := time.Now()
			_, err := c.Echo(ctx, "x")
			if status.Code(err) != tc.want {
				t.Fatalf("Echo: %v, want %v", err, tc.want)
			}
			if tc.want == codes.OK && time.Since(t0) < 300*time.Millisecond {
				t.Fatalf("answered after %v, want >= 300ms latency", time.Since(t0))
			}
		})
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	t.Helper()
	return context.WithTimeout(t.Context(), d)
}
