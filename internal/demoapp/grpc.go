package demoapp

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The echo service. Its messages are protobuf well-known types, so the
// default proto codec carries them and no .proto file or protoc is needed:
// requests are google.protobuf.StringValue, replies google.protobuf.Struct
// with the fields of EchoReply.
const (
	EchoService          = "causeway.demo.v1.Echo"
	EchoMethod           = "/" + EchoService + "/Echo"
	EchoStreamMethod     = "/" + EchoService + "/EchoStream"
	healthServing        = healthpb.HealthCheckResponse_SERVING
	injectedFailureError = "demo-app: injected failure"
)

func registerHealth(s *grpc.Server, h *health.Server) { healthpb.RegisterHealthServer(s, h) }

// echoHandler is the interface RegisterService checks the implementation
// against; a manual ServiceDesc needs one as its HandlerType.
type echoHandler interface {
	echo(ctx context.Context, msg string) (*structpb.Struct, error)
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: EchoService,
	HandlerType: (*echoHandler)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := srv.(echoHandler)
			if icpt == nil {
				return h.echo(ctx, in.GetValue())
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: EchoMethod}
			return icpt(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return h.echo(ctx, req.(*wrapperspb.StringValue).GetValue())
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "EchoStream",
		ServerStreams: true,
		ClientStreams: true,
		Handler: func(srv any, stream grpc.ServerStream) error {
			return srv.(*echoServer).echoStream(stream)
		},
	}},
	Metadata: "causeway/demo/v1/echo (no .proto: well-known types)",
}

type echoServer struct{ s *Server }

// echo answers one message, applying the configured latency and failures.
func (e *echoServer) echo(ctx context.Context, msg string) (*structpb.Struct, error) {
	s := e.s
	s.requests.Add(1)
	if s.fail.fail() {
		return nil, status.Error(codes.Unavailable, injectedFailureError)
	}
	if d := s.opts.Latency; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	md, _ := metadata.FromIncomingContext(ctx)
	fields := map[string]any{}
	for k, v := range md {
		fields[k] = strings.Join(v, ",")
	}
	return structpb.NewStruct(map[string]any{
		"name":     s.opts.Name,
		"version":  s.opts.Version,
		"message":  msg,
		"metadata": fields,
	})
}

// echoStream answers every received message with one reply, in order, until
// the client closes its side. An injected failure ends the stream with
// UNAVAILABLE.
func (e *echoServer) echoStream(stream grpc.ServerStream) error {
	for {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		out, err := e.echo(stream.Context(), in.GetValue())
		if err != nil {
			return err
		}
		if err := stream.SendMsg(out); err != nil {
			return err
		}
	}
}

// EchoReply is the decoded answer of the echo service.
type EchoReply struct {
	Name, Version, Message string
	// Metadata holds the request metadata the server received, values
	// joined with ",", so tests can see headers a proxy added.
	Metadata map[string]string
}

func decodeReply(st *structpb.Struct) *EchoReply {
	f := st.GetFields()
	r := &EchoReply{
		Name:     f["name"].GetStringValue(),
		Version:  f["version"].GetStringValue(),
		Message:  f["message"].GetStringValue(),
		Metadata: map[string]string{},
	}
	for k, v := range f["metadata"].GetStructValue().GetFields() {
		r.Metadata[k] = v.GetStringValue()
	}
	return r
}

// MetadataKeys returns the reply's metadata keys, sorted (for test output).
func (r *EchoReply) MetadataKeys() []string {
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
