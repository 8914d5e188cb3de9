package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

// startUpstream serves the benchmark upstream on loopback for one test.
func startUpstream(t *testing.T) (httpAddr, tcpAddr string) {
	t.Helper()
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeUpstream(ctx, hl, tl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeUpstream: %v", err)
		}
	})
	return hl.Addr().String(), tl.Addr().String()
}

// TestUpstreamAndLoads drives the in-process load generators against the
// real upstream on loopback: every scheduled request is answered and every
// bulk byte is counted by the sink.
func TestUpstreamAndLoads(t *testing.T) {
	httpAddr, tcpAddr := startUpstream(t)
	t.Run("h2c prior knowledge", func(t *testing.T) {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		c := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + httpAddr + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
			t.Errorf("got %s %s, want HTTP/2 200", resp.Proto, resp.Status)
		}
	})
	fixed := []struct {
		name  string
		rate  int
		dur   time.Duration
		conns int
	}{
		{"500 rps for 200ms on 4 connections", 500, 200 * time.Millisecond, 4},
		{"200 rps for 100ms on 1 connection", 200, 100 * time.Millisecond, 1},
	}
	for _, tt := range fixed {
		t.Run("fixed rate "+tt.name, func(t *testing.T) {
			r, err := FixedRate(context.Background(), "http://"+httpAddr+"/", tt.rate, tt.dur, tt.conns)
			if err != nil {
				t.Fatal(err)
			}
			want := int(int64(tt.rate) * int64(tt.dur) / int64(time.Second))
			if r.Sent != want || len(r.Latencies) != want || r.Errors != 0 {
				t.Fatalf("sent %d, answered %d, errors %d; want %d, %d, 0", r.Sent, len(r.Latencies), r.Errors, want, want)
			}
			// Open loop: the last request is due near the end of the window,
			// so the run cannot finish much earlier than it.
			if r.Elapsed < tt.dur*8/10 {
				t.Errorf("elapsed %v, want about %v (schedule not kept)", r.Elapsed, tt.dur)
			}
		})
	}
	bulk := []int64{0, 1, 8<<20 + 3}
	for _, size := range bulk {
		t.Run(fmt.Sprintf("bulk %d bytes", size), func(t *testing.T) {
			r, err := Bulk(tcpAddr, size, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if r.Bytes != size || r.Duration <= 0 {
				t.Errorf("Bulk = %+v, want %d bytes", r, size)
			}
		})
	}
	t.Run("bulk to a closed port fails", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		if _, err := Bulk(addr, 10, time.Second); err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("Bulk to closed %s: error %v, want one naming the address", addr, err)
		}
	})
}

// TestGeneratedConfigs checks every generated config with its own program:
// HAProxy's and NGINX's config checkers when installed, and for Causeway the
// decoding of the config part into spec.NodeConfig (the proxy's bootstrap
// loader is strict, so an unknown field would fail there at start).
func TestGeneratedConfigs(t *testing.T) {
	dir := t.TempDir()
	p := Ports{H1: 20001, H2: 20002, TCP: 20003, UpHTTP: 20004, UpTCP: 20005, Admin: 20006, Admin2: 20007, Inbound: 20008, H1Conns: 50}
	withStream := p
	if _, err := os.Stat(nginxStreamPath); err == nil {
		withStream.NginxStreamModule = nginxStreamPath
	}
	check := func(t *testing.T, prog string, args ...string) {
		t.Helper()
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s not installed (bench/install.sh installs it)", prog)
		}
		if out, err := exec.Command(prog, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", prog, args, err, out)
		}
	}
	t.Run("haproxy -c", func(t *testing.T) {
		f := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(f, []byte(HAProxyConfig(p)), 0o644); err != nil {
			t.Fatal(err)
		}
		check(t, "haproxy", "-c", "-q", "-f", f)
	})
	for _, tt := range []struct {
		name string
		p    Ports
	}{{"nginx -t without stream", p}, {"nginx -t with stream when installed", withStream}} {
		t.Run(tt.name, func(t *testing.T) {
			d := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(d, "nginx.conf")
			if err := os.WriteFile(f, []byte(NginxConfig(tt.p, d)), 0o644); err != nil {
				t.Fatal(err)
			}
			check(t, "nginx", "-q", "-t", "-p", d, "-e", filepath.Join(d, "error.log"), "-c", f)
		})
	}
	causeway := []struct {
		name      string
		gen       func() ([]byte, error)
		wantEPs   []spec.Endpoint // of the h1 cluster; nil for the server sidecar
		inbound   int
		upstreams int
	}{
		{name: "client sidecar, one hop", gen: func() ([]byte, error) { return CausewayClientConfig(p, false) },
			wantEPs: []spec.Endpoint{{Addr: "127.0.0.1", Port: 20004, ServicePort: 80, Ready: true}}, upstreams: 3},
		{name: "client sidecar, two hops", gen: func() ([]byte, error) { return CausewayClientConfig(p, true) },
			wantEPs: []spec.Endpoint{{Addr: "127.0.0.1", Port: 20008, Ready: true}}, upstreams: 3},
		{name: "server sidecar", gen: func() ([]byte, error) { return CausewayServerConfig(p) }, inbound: 3},
	}
	for _, tt := range causeway {
		t.Run(tt.name, func(t *testing.T) {
			data, err := tt.gen()
			if err != nil {
				t.Fatal(err)
			}
			var b struct {
				Config spec.NodeConfig `json:"config"`
			}
			if err := json.Unmarshal(data, &b); err != nil {
				t.Fatal(err)
			}
			c := b.Config
			if len(c.Upstreams) != tt.upstreams || len(c.Inbound.Services) != tt.inbound {
				t.Fatalf("upstreams %d, inbound services %d; want %d, %d", len(c.Upstreams), len(c.Inbound.Services), tt.upstreams, tt.inbound)
			}
			if tt.wantEPs != nil {
				got := c.Clusters[0].Endpoints
				if len(got) != 1 || got[0].Addr != tt.wantEPs[0].Addr || got[0].Port != tt.wantEPs[0].Port || got[0].ServicePort != tt.wantEPs[0].ServicePort {
					t.Errorf("h1 endpoints = %+v, want %+v", got, tt.wantEPs)
				}
			}
			for _, s := range c.Inbound.Services {
				for _, port := range s.Ports {
					if port.TargetPort != 20004 && port.TargetPort != 20005 {
						t.Errorf("%v port %d targets %d, want the upstream's 20004/20005", s.Key, port.Port, port.TargetPort)
					}
				}
			}
		})
	}
}
