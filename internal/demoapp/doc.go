// Package demoapp is the small HTTP + gRPC + TCP/UDP server behind
// `causeway demo-app`, used by tests and examples as the application behind
// a Causeway proxy.
//
// What enters: Options (name, version, listen addresses, injected latency
// and failures) and traffic on the listeners:
//   - HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on Listen. Every path
//     answers a JSON Response naming the server and echoing the method, path,
//     host and all request headers (so tests can see X-Forwarded-Client-Cert).
//     The query parameters status=NNN and latency=DURATION override the
//     answer for one request. A request with an Upgrade header is answered
//     101 and the connection then echoes bytes (a stand-in for WebSocket).
//     HTTP/2 requests with content type application/grpc go to the gRPC server.
//   - gRPC on GRPCListen (and on Listen over h2c): grpc.health.v1.Health and
//     causeway.demo.v1.Echo (unary Echo, bidirectional EchoStream), built on
//     well-known protobuf types so no code generation is needed. EchoClient
//     is the matching client for tests.
//   - raw TCP echo on TCPEcho, UDP datagram echo on UDPEcho.
//
// What leaves: responses, and Server's bound addresses (port 0 is allowed).
//
// Failures: FailEvery N fails every Nth request; else FailRate fails that share
// using a RNG seeded with Seed, so a run's sequence of outcomes is
// reproducible. A failed HTTP request answers FailStatus (default 503) with
// the usual JSON; a failed gRPC call returns UNAVAILABLE.
//
// Goroutines: Start runs one serving goroutine per listener plus one per TCP
// or upgraded connection, and one that waits for ctx to end and shuts the
// server down. Shutdown (or ctx's end) stops accepting, drains in-flight
// requests until its context ends, then closes what is left; Done is closed
// when every goroutine has returned.
package demoapp
