package demoapp

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// EchoClient calls the demo app's echo service over any gRPC connection,
// e.g. one dialled through a Causeway proxy.
type EchoClient struct{ cc grpc.ClientConnInterface }

// NewEchoClient wraps cc.
func NewEchoClient(cc grpc.ClientConnInterface) *EchoClient { return &EchoClient{cc: cc} }

// Echo sends one message and returns the server's answer.
func (c *EchoClient) Echo(ctx context.Context, msg string, opts ...grpc.CallOption) (*EchoReply, error) {
	out := new(structpb.Struct)
	if err := c.cc.Invoke(ctx, EchoMethod, wrapperspb.String(msg), out, opts...); err != nil {
		return nil, err
	}
	return decodeReply(out), nil
}

// EchoStream opens a bidirectional stream: every Send is answered by one Recv.
func (c *EchoClient) EchoStream(ctx context.Context, opts ...grpc.CallOption) (*EchoStream, error) {
	cs, err := c.cc.NewStream(ctx, &echoDesc.Streams[0], EchoStreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	return &EchoStream{cs: cs}, nil
}

// EchoStream is an open echo stream. Send and Recv may run on two different
// goroutines, as with any gRPC stream; neither may be called concurrently
// with itself.
type EchoStream struct{ cs grpc.ClientStream }

// Send sends one message.
func (s *EchoStream) Send(msg string) error { return s.cs.SendMsg(wrapperspb.String(msg)) }

// Recv receives the next reply; io.EOF after the server ended the stream
// cleanly, a status error otherwise.
func (s *EchoStream) Recv() (*EchoReply, error) {
	out := new(structpb.Struct)
	if err := s.cs.RecvMsg(out); err != nil {
		return nil, err
	}
	return decodeReply(out), nil
}

// CloseSend ends the client's side; the server then ends the stream.
func (s *EchoStream) CloseSend() error { return s.cs.CloseSend() }
