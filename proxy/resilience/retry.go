package resilience

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// RetryableHeader lets a client mark a non-idempotent request as safe to
// retry: `x-causeway-retryable: true` (value case-insensitive). Any other
// value, or its absence, leaves the decision to the method.
const RetryableHeader = "X-Causeway-Retryable"

// IsRetryable reports whether a request may be sent again after a failure:
// its method is idempotent by RFC 9110 §9.2.2 (GET, HEAD, OPTIONS, PUT,
// DELETE, TRACE), or the client opted in with RetryableHeader. POST and PATCH
// are not retried by default because the first attempt may have taken effect.
// Header names must be canonical, as net/http delivers them.
func IsRetryable(method string, header http.Header) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return strings.EqualFold(strings.TrimSpace(first(header, RetryableHeader)), "true")
}

// first returns the first value of a header whose canonical name is key.
// net/http canonicalises received header and trailer names, so a direct map
// read is enough and skips Get's re-canonicalisation on every request.
func first(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// grpcUnavailable is the gRPC status saying the service could not take the
// call (typically it never reached the application), so a retry may succeed.
const grpcUnavailable = "14"

// RetryableStatus reports whether an HTTP status is worth retrying: any 5xx
// except 501 Not Implemented and 505 HTTP Version Not Supported, which will
// fail the same way on every endpoint.
func RetryableStatus(status int) bool {
	return status >= 500 && status <= 599 &&
		status != http.StatusNotImplemented && status != http.StatusHTTPVersionNotSupported
}

// RetryableGRPC reports whether a gRPC response is worth retrying: its
// grpc-status is UNAVAILABLE (14), whether sent in the headers (a
// trailers-only response) or in the trailers. Other codes, e.g. INTERNAL or
// DEADLINE_EXCEEDED, may mean the call ran, so they are not retried.
func RetryableGRPC(header, trailer http.Header) bool {
	if s := first(header, "Grpc-Status"); s != "" {
		return s == grpcUnavailable
	}
	return first(trailer, "Grpc-Status") == grpcUnavailable
}

// RetryableResponse classifies a complete response: gRPC responses (content
// type application/grpc...) by grpc-status, everything else by HTTP status.
func RetryableResponse(status int, header, trailer http.Header) bool {
	if strings.HasPrefix(first(header, "Content-Type"), "application/grpc") {
		return RetryableGRPC(header, trailer)
	}
	return RetryableStatus(status)
}

// RetryableError reports whether a transport error means the upstream could
// not be reached or dropped the connection: dial failures, refused or reset
// connections, and an early EOF. A context cancellation or deadline is never
// retryable: the caller gave up, or the route timeout fired.
func RetryableError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var op *net.OpError
	// Any dial failure (including a dial timeout) means the request was
	// never sent.
	return errors.As(err, &op) && op.Op == "dial"
}
