package demoapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// Options configure a demo app. Every listen address is optional; an empty
// one disables that listener. Use port 0 and read the Server's addresses.
type Options struct {
	Name    string
	Version string

	Listen     string // HTTP/1.1 + h2c (+ gRPC over h2c)
	GRPCListen string // native gRPC
	TCPEcho    string
	UDPEcho    string

	// Latency is added before every HTTP response and gRPC reply.
	Latency time.Duration
	// FailRate is the share (0..1) of requests that fail, drawn from a RNG
	// seeded with Seed. Ignored when FailEvery is set.
	FailRate float64
	// FailEvery fails exactly every Nth request (N, 2N, ...): the most
	// deterministic choice for tests. 0 disables.
	FailEvery int
	// FailStatus is the HTTP status of a failed request. Default 503.
	FailStatus int
	// Seed seeds the FailRate RNG. 0 means 1, so runs repeat by default.
	Seed uint64

	// ShutdownGrace bounds the drain when ctx given to Start ends. Default 5s.
	ShutdownGrace time.Duration
	// Logger receives one line per listener and per shutdown; nil discards.
	Logger *slog.Logger
}

// Server is a running demo app.
type Server struct {
	opts Options
	log  *slog.Logger

	// Bound addresses; nil when the listener is disabled.
	HTTPAddr, GRPCAddr, TCPAddr net.Addr
	UDPAddr                     net.Addr

	httpSrv *http.Server
	grpcSrv *grpc.Server
	health  *health.Server
	tcpLn   net.Listener
	udpConn net.PacketConn
	fail    *failer

	wg       sync.WaitGroup
	conns    connSet // TCP echo and upgraded HTTP connections
	done     chan struct{}
	shutOnce sync.Once
	shutErr  error
	requests atomic.Int64
}

// Start binds every configured listener and serves until ctx ends or
// Shutdown is called. If any bind fails, nothing is left listening.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.FailRate < 0 || o.FailRate > 1 {
		return nil, fmt.Errorf("demoapp: fail rate %v: want a share between 0 and 1", o.FailRate)
	}
	if o.FailEvery < 0 {
		return nil, fmt.Errorf("demoapp: fail every %d: want 0 (off) or more", o.FailEvery)
	}
	if o.FailStatus == 0 {
		o.FailStatus = http.StatusServiceUnavailable
	}
	if o.FailStatus < 100 || o.FailStatus > 599 {
		return nil, fmt.Errorf("demoapp: fail status %d: not an HTTP status", o.FailStatus)
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Listen == "" && o.GRPCListen == "" && o.TCPEcho == "" && o.UDPEcho == "" {
		return nil, errors.New("demoapp: no listen address: set at least one of listen, grpc-listen, tcp-echo, udp-echo")
	}
	s := &Server{
		opts: o,
		log:  o.Logger,
		done: make(chan struct{}),
		fail: &failer{every: uint64(o.FailEvery), rate: o.FailRate, rng: rand.New(rand.NewPCG(o.Seed, o.Seed))},
	}
	s.health = health.NewServer()
	s.grpcSrv = grpc.NewServer()
	s.health.SetServingStatus("", healthServing)
	s.health.SetServingStatus(EchoService, healthServing)
	registerHealth(s.grpcSrv, s.health)
	s.grpcSrv.RegisterService(&echoDesc, &echoServer{s: s})

	var lns []func() // start functions, run only once every bind succeeded
	closeAll := []func(){}
	bindErr := func(what, addr string, err error) error {
		for _, c := range closeAll {
			c()
		}
		return fmt.Errorf("demoapp: %s listen %s: %w", what, addr, err)
	}
	if o.Listen != "" {
		ln, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return nil, bindErr("http", o.Listen, err)
		}
		closeAll = append(closeAll, func() { ln.Close() })
		s.HTTPAddr = ln.Addr()
		s.httpSrv = s.newHTTPServer()
		lns = append(lns, func() {
			if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("demo-app http serve", "addr", s.HTTPAddr, "err", err)
			}
		})
	}
	if o.GRPCListen != "" {
		ln, err := net.Listen("tcp", o.GRPCListen)
		if err != nil {
			return nil, bindErr("grpc", o.GRPCListen, err)
		}
		closeAll = append(closeAll, func() { ln.Close() })
		s.GRPCAddr = ln.Addr()
		lns = append(lns, func() {
			if err := s.grpcSrv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.log.Error("demo-app grpc serve", "addr", s.GRPCAddr, "err", err)
			}
		})
	}
	if o.TCPEcho != "" {
		ln, err := net.Listen("tcp", o.TCPEcho)
		if err != nil {
			return nil, bindErr("tcp echo", o.TCPEcho, err)
		}
		closeAll = append(closeAll, func() { ln.Close() })
		s.tcpLn, s.TCPAddr = ln, ln.Addr()
		lns = append(lns, s.serveTCPEcho)
	}
	if o.UDPEcho != "" {
		pc, err := net.ListenPacket("udp", o.UDPEcho)
		if err != nil {
			return nil, bindErr("udp echo", o.UDPEcho, err)
		}
		closeAll = append(closeAll, func() { pc.Close() })
		s.udpConn, s.UDPAddr = pc, pc.LocalAddr()
		lns = append(lns, s.serveUDPEcho)
	}
	for _, run := range lns {
		s.wg.Go(run)
	}
	s.log.Info("demo-app listening", "name", o.Name, "version", o.Version,
		"http", addrString(s.HTTPAddr), "grpc", addrString(s.GRPCAddr),
		"tcp_echo", addrString(s.TCPAddr), "udp_echo", addrString(s.UDPAddr))

	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
			defer cancel()
			_ = s.Shutdown(sctx)
		case <-s.done:
		}
	}()
	return s, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// URL returns the HTTP base URL, e.g. "http://127.0.0.1:43121", or "" when
// HTTP is disabled.
func (s *Server) URL() string {
	if s.HTTPAddr == nil {
		return ""
	}
	return "http://" + s.HTTPAddr.String()
}

// Requests returns how many HTTP requests and gRPC calls (stream messages
// count one each) the server has answered, failed ones included.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Done is closed when the server has stopped and all its goroutines returned.
func (s *Server) Done() <-chan struct{} { return s.done }

// Shutdown stops accepting, marks gRPC health NOT_SERVING, lets in-flight
// requests finish until ctx ends, then closes every remaining connection.
// It is safe to call more than once; later calls wait for the first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() {
		s.health.Shutdown()
		var errs []error
		var stop sync.WaitGroup
		if s.httpSrv != nil {
			stop.Go(func() {
				if err := s.httpSrv.Shutdown(ctx); err != nil {
					s.httpSrv.Close()
					errs = append(errs, fmt.Errorf("demoapp: http shutdown: %w", err))
				}
			})
		}
		stop.Go(func() {
			graceful := make(chan struct{})
			go func() { s.grpcSrv.GracefulStop(); close(graceful) }()
			select {
			case <-graceful:
			case <-ctx.Done():
				s.grpcSrv.Stop()
				<-graceful
			}
		})
		if s.tcpLn != nil {
			s.tcpLn.Close()
		}
		if s.udpConn != nil {
			s.udpConn.Close()
		}
		stop.Wait()
		// TCP echo and upgraded connections have no request boundary to
		// drain at: give them until ctx ends, then close them.
		if !s.conns.waitEmpty(ctx) {
			s.conns.closeAll()
		}
		s.wg.Wait()
		s.shutErr = errors.Join(errs...)
		s.log.Info("demo-app stopped", "name", s.opts.Name)
		close(s.done)
	})
	<-s.done
	return s.shutErr
}

// Close stops the server at once, dropping in-flight requests.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

// failer decides which requests fail. Safe for concurrent use.
type failer struct {
	every uint64
	rate  float64
	n     atomic.Uint64
	mu    sync.Mutex
	rng   *rand.Rand
}

func (f *failer) fail() bool {
	if f.every > 0 {
		return f.n.Add(1)%f.every == 0
	}
	if f.rate <= 0 {
		return false
	}
	f.mu.Lock()
	v := f.rng.Float64()
	f.mu.Unlock()
	return v < f.rate
}

// connSet tracks hijacked and raw TCP connections for shutdown.
type connSet struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	empty chan struct{} // closed and replaced when the set becomes empty
}

func (c *connSet) add(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns == nil {
		c.conns = map[net.Conn]struct{}{}
	}
	c.conns[conn] = struct{}{}
}

func (c *connSet) remove(conn net.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.conns, conn)
	if len(c.conns) == 0 && c.empty != nil {
		close(c.empty)
		c.empty = nil
	}
}

// waitEmpty waits until no connection is tracked or ctx ends.
func (c *connSet) waitEmpty(ctx context.Context) bool {
	c.mu.Lock()
	if len(c.conns) == 0 {
		c.mu.Unlock()
		return true
	}
	if c.empty == nil {
		c.empty = make(chan struct{})
	}
	ch := c.empty
	c.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *connSet) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for conn := range c.conns {
		conn.Close()
	}
}
