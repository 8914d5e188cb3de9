package gateway_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy/proxytest"
	"github.com/causeway-mesh/causeway/spec"
)

// TestSwapUnderLoad: while west callers send HTTP requests (pooled
// gateway connections) and TCP echo flows (a new gateway connection each)
// through the gateway, its config is swapped every few milliseconds between
// endpoint sets {d0,d1}, {d0}, {d1} and with an extra exported service
// coming and going. No request or flow fails, and both destinations served.
func TestSwapUnderLoad(t *testing.T) {
	m := newMulti(t, 2)
	web := m.caller(t, m.west, m.westFed, "web")
	httpURL := "http://" + web.FixedAddr(importK.String(), portHTTP).String() + "/books"
	tcpAddr := web.FixedAddr(importK.String(), portTCP).String()

	books := m.eastIn.Services[0]
	var configs []*spec.NodeConfig
	for i, eps := range [][]spec.Endpoint{books.Endpoints, books.Endpoints[:1], books.Endpoints[1:]} {
		in := m.eastIn
		in.Services = append([]spec.Service(nil), m.eastIn.Services...)
		in.Services[0].Endpoints = eps
		if i%2 == 1 {
			extra := books
			extra.Key = spec.Key{Namespace: "shop", Name: fmt.Sprintf("extra-%d", i)}
			in.Services = append(in.Services, extra)
		}
		configs = append(configs, m.gatewayConfig(t, in))
	}

	stop := make(chan struct{})
	var failures atomic.Int64
	var httpOK, tcpOK atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, err)
	}
	var wg sync.WaitGroup
	c := httpClient(t)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(httpURL)
				if err != nil {
					fail(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail(fmt.Errorf("status %d", resp.StatusCode))
					continue
				}
				httpOK.Add(1)
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			msg := []byte("swap me")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := echoOnce(tcpAddr, msg); err != nil {
					fail(err)
					continue
				}
				tcpOK.Add(1)
			}
		})
	}
	// Swap for at least 1.5 s and until the load has done a fair amount
	// of work across the swaps; a loaded machine just takes longer. The
	// 60 s bound only stops a load that does not run at all.
	const wantHTTP, wantTCP = 100, 20
	swaps := 0
	begin := time.Now()
	for time.Since(begin) < 1500*time.Millisecond || httpOK.Load() < wantHTTP || tcpOK.Load() < wantTCP {
		if time.Since(begin) > time.Minute {
			break
		}
		if err := m.gw.Apply(configs[swaps%len(configs)]); err != nil {
			t.Fatalf("swap %d: %v", swaps, err)
		}
		swaps++
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d failures during %d swaps (first: %v)", n, swaps, firstErr.Load())
	}
	if httpOK.Load() < wantHTTP || tcpOK.Load() < wantTCP {
		t.Fatalf("only %d HTTP requests and %d TCP flows in %s: the load did not run", httpOK.Load(), tcpOK.Load(), time.Since(begin).Round(time.Millisecond))
	}
	for i, d := range m.dests {
		if n := inboundFlows(t, d.AdminAddr()); n == 0 {
			t.Errorf("destination %d served no TCP flow: the balancer never used it", i)
		}
	}
	t.Logf("%d swaps, %d HTTP requests, %d TCP flows, 0 failures", swaps, httpOK.Load(), tcpOK.Load())
}

func echoOnce(addr string, msg []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// TestWithdrawnExportCutsLiveConnections: a relayed TCP flow survives a
// config that changes the exported service's endpoints, and is closed by
// one that stops exporting it.
func TestWithdrawnExportCutsLiveConnections(t *testing.T) {
	m := newMulti(t, 2)
	web := m.caller(t, m.west, m.westFed, "web")
	conn, err := net.Dial("tcp", web.FixedAddr(importK.String(), portTCP).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	roundTrip := func(msg string) error {
		if _, err := io.WriteString(conn, msg); err != nil {
			return err
		}
		b := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, b); err != nil {
			return err
		}
		if string(b) != msg {
			return fmt.Errorf("echo %q, want %q", b, msg)
		}
		return nil
	}
	if err := roundTrip("before"); err != nil {
		t.Fatal(err)
	}
	apply := func(mod func(*spec.Service)) {
		t.Helper()
		in := m.eastIn
		in.Services = append([]spec.Service(nil), m.eastIn.Services...)
		mod(&in.Services[0])
		if err := m.gw.Apply(m.gatewayConfig(t, in)); err != nil {
			t.Fatal(err)
		}
	}
	apply(func(s *spec.Service) { s.Endpoints = s.Endpoints[:1] })
	apply(func(s *spec.Service) { s.Endpoints = s.Endpoints[1:] })
	if err := roundTrip("after endpoint changes"); err != nil {
		t.Fatalf("flow broken by an endpoint change: %v", err)
	}
	apply(func(s *spec.Service) { s.Export = false })
	var b [1]byte
	if _, err := conn.Read(b[:]); err == nil {
		t.Fatal("flow still open after shop/books stopped being exported")
	} else if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("flow still open after shop/books stopped being exported (read timed out)")
	}
}

// TestUnlinkCutsLiveConnections: when the caller's trust domain loses its
// bundle (the link is removed), the gateway closes the connections it is
// relaying for that trust domain, not only new handshakes.
func TestUnlinkCutsLiveConnections(t *testing.T) {
	m := newMulti(t, 1)
	web := m.caller(t, m.west, m.westFed, "web")
	conn, err := net.Dial("tcp", web.FixedAddr(importK.String(), portTCP).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "linked"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len("linked"))
	if _, err := io.ReadFull(conn, b); err != nil || string(b) != "linked" {
		t.Fatalf("echo before unlink: %q %v", b, err)
	}
	m.eastFed.Remove(westTD) // east's workloads, the gateway among them, stop trusting west
	var one [1]byte
	if _, err := conn.Read(one[:]); err == nil {
		t.Fatal("flow still open after west was unlinked")
	} else if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("flow still open after west was unlinked (read timed out)")
	}
	mfs := proxytest.Scrape(t, "http://"+m.gw.AdminAddr().String()+"/metrics")
	if got := proxytest.Sum(mfs, "causeway_gateway_revoked_connections_total", nil); got != 1 {
		t.Errorf("revoked connections = %v, want 1", got)
	}
}
