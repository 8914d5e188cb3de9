package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

// Errors the outbound round trip ends with; proxyError maps them to statuses.
var (
	errTimeout     = errors.New("route timeout passed before response headers")
	errCircuitOpen = errors.New("circuit open")
	errNoCluster   = errors.New("no cluster for backend")
	errNoEndpoints = errors.New("no ready endpoints")
)

// retryableHeader lets a client mark a non-idempotent request safe to retry
// (the request is stripped of it before it leaves).
const retryableHeader = "Causeway-Retryable"

// maxRetryBody is the largest request body buffered so that an explicitly
// retryable request can be replayed.
const maxRetryBody = 64 << 10

// bufSize is the copy buffer size: 32 KiB, what io.Copy uses.
const bufSize = 32 << 10

// bufPool hands ReverseProxy and the L4 copiers 32 KiB buffers, so copying a
// body does not allocate one per request. It pools array pointers: Put
// converts the slice back to *[bufSize]byte, so neither Get nor Put
// allocates (pooling a []byte would box its header on every Put).
type bufPool struct{ p sync.Pool }

func newBufPool() *bufPool {
	return &bufPool{p: sync.Pool{New: func() any { return new([bufSize]byte) }}}
}

func (b *bufPool) Get() []byte { return b.p.Get().(*[bufSize]byte)[:] }

func (b *bufPool) Put(x []byte) {
	if cap(x) >= bufSize {
		b.p.Put((*[bufSize]byte)(x[:bufSize]))
	}
}

// exchange is what one request carries from the routing decision through the
// ReverseProxy to the round trip and back. Pooled.
type exchange struct {
	cp       *clusterPort
	up       *upstreamPolicy
	timeout  time.Duration
	endpoint string
}

type exchangeKey struct{}

var exchangePool = sync.Pool{New: func() any { return new(exchange) }}

// recorder remembers the status a handler sent. Unwrap lets ReverseProxy's
// ResponseController reach the real writer to flush and hijack.
type recorder struct {
	http.ResponseWriter
	status int
}

var recorderPool = sync.Pool{New: func() any { return new(recorder) }}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush passes a flush through, so streamed bodies are not held back.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// grpcStatus finds grpc-status in the response headers or, once the body is
// done, in the trailers ReverseProxy copied into the header map.
func grpcStatus(h http.Header) string {
	if v := h["Grpc-Status"]; len(v) > 0 {
		return v[0]
	}
	if v := h[http.TrailerPrefix+"Grpc-Status"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// classify says whether a response is a success: not a 5xx and, for gRPC, an
// OK grpc-status (Linkerd's default classification).
func classify(status int, grpc string) string {
	if status >= 500 || status == 0 || (grpc != "" && grpc != "0") {
		return "failure"
	}
	return "success"
}

func (p *Proxy) newOutboundReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Director: func(r *http.Request) {
			r.URL.Scheme = "http"
			// A sidecar is transparent: it does not add X-Forwarded-For (a nil
			// entry tells ReverseProxy to leave the header alone).
			if _, ok := r.Header["X-Forwarded-For"]; !ok {
				r.Header["X-Forwarded-For"] = nil
			}
		},
		Transport:    roundTripperFunc(p.roundTrip),
		BufferPool:   p.bufs,
		ErrorHandler: proxyError,
		ErrorLog:     p.errLog,
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// proxyError answers a request the proxy could not forward. The reason goes
// in the body, short, for people debugging with curl.
func proxyError(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusBadGateway
	switch {
	case errors.Is(err, errTimeout):
		code = http.StatusGatewayTimeout
	case errors.Is(err, errCircuitOpen), errors.Is(err, errNoEndpoints), errors.Is(err, errNoCluster):
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Causeway-Error", err.Error())
	w.WriteHeader(code)
	io.WriteString(w, "causeway: "+err.Error()+"\n")
}

// isIdempotent lists the methods RFC 9110 §9.2.2 says may be repeated.
func isIdempotent(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// prepareRetry decides whether a request may be retried and makes its body
// replayable if so: idempotent requests without a body, or any request the
// client marked retryable whose body fits maxRetryBody.
func prepareRetry(r *http.Request) bool {
	explicit := r.Header.Get(retryableHeader) != ""
	if explicit {
		r.Header.Del(retryableHeader)
	}
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	noBody := r.Body == nil || r.Body == http.NoBody
	if noBody {
		return explicit || isIdempotent(r.Method)
	}
	if !explicit || r.ContentLength < 0 || r.ContentLength > maxRetryBody {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxRetryBody+1))
	r.Body.Close()
	if err != nil || len(b) > maxRetryBody {
		r.Body = io.NopCloser(bytes.NewReader(b))
		return false
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body, _ = r.GetBody()
	return true
}

// cancelBody ends the attempt's context when the response body is closed:
// the route timeout bounds the wait for headers, not a streaming body.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelCauseFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

// roundTrip sends one outbound request to its cluster: breaker, endpoint
// choice, retries within the budget, and the route timeout.
func (p *Proxy) roundTrip(req *http.Request) (*http.Response, error) {
	return p.send(req, req.Context().Value(exchangeKey{}).(*exchange))
}

// send is roundTrip with the exchange in hand (the forwarder's way in).
func (p *Proxy) send(req *http.Request, ex *exchange) (*http.Response, error) {
	cp, up := ex.cp, ex.up
	retry := up.Retry.Attempts > 0 && prepareRetry(req)
	up.budget.Deposit()

	upgrade := isUpgrade(req)
	var deadline time.Time
	if _, h2 := cp.rt.(*h2Pool); ex.timeout > 0 && (cp.h1 != nil || h2) && !upgrade {
		// The HTTP/1.1 hot path enforces the timeout as a socket deadline
		// on the header wait, the HTTP/2 client as a timer on it: no
		// context or body wrapper per request.
		deadline = time.Now().Add(ex.timeout)
		return p.attempts(req, ex, cp, up, retry, deadline)
	}
	var cancel context.CancelCauseFunc
	var timer *time.Timer
	if ex.timeout > 0 && !upgrade {
		var ctx context.Context
		ctx, cancel = context.WithCancelCause(req.Context())
		timer = time.AfterFunc(ex.timeout, func() { cancel(errTimeout) })
		req = req.WithContext(ctx)
	}
	resp, err := p.attempts(req, ex, cp, up, retry, deadline)
	if cancel != nil {
		stopped := timer.Stop()
		if err != nil || !stopped {
			if context.Cause(req.Context()) == errTimeout {
				if resp != nil {
					resp.Body.Close()
				}
				cancel(nil)
				return nil, errTimeout
			}
			cancel(nil)
			return resp, err
		}
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	}
	return resp, err
}

// attempts sends req until it succeeds, retries are used up or not allowed,
// or the deadline (zero: none; only the h1 and h2 clients take it) has passed.
func (p *Proxy) attempts(req *http.Request, ex *exchange, cp *clusterPort, up *upstreamPolicy, retry bool, deadline time.Time) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		done, ok := cp.breaker.Allow()
		if !ok {
			return nil, errCircuitOpen
		}
		pick, err := cp.lb.Pick()
		if err != nil {
			done(false)
			return nil, errNoEndpoints
		}
		addr := pick.Addr
		out := req
		if attempt > 0 {
			r2 := *req
			u := *req.URL
			r2.URL = &u
			if req.GetBody != nil {
				r2.Body, _ = req.GetBody()
			}
			out = &r2
		}
		out.URL.Host = addr
		ex.endpoint = addr
		t0 := time.Now()
		var resp *http.Response
		switch {
		case isUpgrade(out):
			resp, err = cp.transport.RoundTrip(out) // hands back a writable 101 body
		case cp.h1 != nil:
			resp, err = cp.h1.roundTrip(out, deadline)
		default:
			if h2, ok := cp.rt.(*h2Pool); ok {
				resp, err = h2.roundTrip(out, deadline)
			} else {
				resp, err = cp.rt.RoundTrip(out)
			}
		}
		if err != nil && req.Context().Err() != nil && context.Cause(req.Context()) != errTimeout {
			// The client went away (or the proxy is closing): not the
			// endpoint's failure, so neither the breaker nor the balancer
			// may count it, or every load test's end would open circuits.
			pick.Done(time.Since(t0), false)
			done(true)
			return nil, err
		}
		failed := err != nil || resp.StatusCode >= 500 || (resp.StatusCode == 200 && grpcFailure(resp.Header))
		pick.Done(time.Since(t0), failed)
		done(!failed)
		if !failed || !retry || attempt >= up.Retry.Attempts || req.Context().Err() != nil || errors.Is(err, errTimeout) {
			return resp, err
		}
		if !up.budget.Withdraw() {
			p.m.exhausted.WithLabelValues(up.name).Inc()
			return resp, err
		}
		p.m.retries.WithLabelValues(up.name).Inc()
		if resp != nil {
			io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
		}
	}
}

// grpcFailure reports a trailers-only gRPC response with a status the
// breaker and balancer should count against the endpoint: UNAVAILABLE (14).
func grpcFailure(h http.Header) bool {
	v := h["Grpc-Status"]
	return len(v) > 0 && v[0] == "14"
}

// serveOutbound routes one HTTP request to service svc on port, through
// spec.Table.RouteHTTP and the TrafficSplit weights, and forwards it.
func (p *Proxy) serveOutbound(w http.ResponseWriter, r *http.Request, st *routingState, svc spec.Key, port spec.Port) {
	start := time.Now()
	up := st.upstreams[svc]
	dec, ok := st.table.RouteHTTP(svc, &spec.Request{Method: r.Method, Path: r.URL.Path, Header: r.Header})
	if !ok || up == nil {
		http.Error(w, "causeway: no upstream "+svc.String(), http.StatusServiceUnavailable)
		return
	}
	route := dec.Match
	if route == "" {
		route = "default"
	}
	backend, _ := pickWeighted(dec.Backends)
	cp := st.cluster(backend.Service, port.Port, port.Protocol)
	backendName := backend.Service.Name
	if cp != nil {
		backendName = cp.svcName
	}
	p.m.requests.WithLabelValues("outbound", up.name, route, backendName).Inc()

	rec := recorderPool.Get().(*recorder)
	rec.ResponseWriter, rec.status = w, 0
	ex := exchangePool.Get().(*exchange)
	*ex = exchange{cp: cp, up: up, timeout: up.timeout(dec.Match)}
	var aborted error
	switch {
	case cp == nil:
		proxyError(rec, r, errNoCluster)
	case isUpgrade(r):
		ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
		p.outRP.ServeHTTP(rec, r.WithContext(ctx))
	default:
		prepareOutbound(r)
		resp, err := p.send(r, ex)
		if err != nil {
			proxyError(rec, r, err)
		} else {
			aborted = p.writeResponse(rec, resp)
		}
	}
	status, gs := rec.status, grpcStatus(w.Header())
	if status == 0 {
		status = http.StatusSwitchingProtocols // hijacked by an upgrade
	}
	class := classify(status, gs)
	if aborted != nil {
		class = "failure"
	}
	elapsed := time.Since(start)
	p.m.responses.WithLabelValues("outbound", up.name, route, backendName, p.m.status(status), gs, class).Inc()
	p.m.latency.WithLabelValues("outbound", up.name, backendName, class).Observe(elapsed.Seconds())
	if p.tap.active() {
		p.tap.publish(&TapEvent{Time: start, Direction: "outbound", Service: up.name, Route: route, Backend: backendName,
			Endpoint: ex.endpoint, Method: r.Method, Authority: r.Host, Path: r.URL.Path, Status: status,
			GRPCStatus: gs, Classification: class, LatencyMs: float64(elapsed.Microseconds()) / 1000})
	}
	rec.ResponseWriter = nil
	recorderPool.Put(rec)
	*ex = exchange{}
	exchangePool.Put(ex)
	if aborted != nil {
		panic(http.ErrAbortHandler) // cut the client's response: it is incomplete
	}
}

// splitHostPort splits an authority, defaulting the port.
func splitHostPort(hostport string, def int32) (string, int32, bool) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, def, true // no port
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, false
	}
	return host, int32(n), true
}

// serveForward is the HTTP forward proxy (HTTP_PROXY): absolute-form
// requests routed by host, CONNECT tunnels proxied as TCP.
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.serveConnect(w, r)
		return
	}
	authority := r.URL.Host
	if authority == "" {
		authority = r.Host
	}
	host, port, ok := splitHostPort(authority, 80)
	if !ok {
		http.Error(w, "causeway: bad authority "+authority, http.StatusBadRequest)
		return
	}
	st := p.state.Load()
	svc, ok := st.table.Resolve(host)
	if !ok {
		http.Error(w, "causeway: "+host+" is not a service of the mesh", http.StatusBadGateway)
		return
	}
	sp, ok := st.portOf(svc, port)
	if !ok || !sp.Protocol.IsHTTP() {
		http.Error(w, "causeway: "+svc.String()+" has no HTTP port "+strconv.Itoa(int(port)), http.StatusBadGateway)
		return
	}
	p.serveOutbound(w, r, st, svc, sp)
}
