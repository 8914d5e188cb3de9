// Package proxytest holds helpers for tests of the Causeway proxy: demo apps
// on loopback, NodeConfigs built through spec.Build/Compile, free ports,
// /metrics scraping with Prometheus' own text parser.
//
// What enters: a *testing.T and plain values. What leaves: running servers
// (stopped by t.Cleanup), compiled configs, parsed metric families.
// Goroutines: only those of the demo apps it starts, which end at cleanup.
package proxytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/causeway-mesh/causeway/internal/demoapp"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/spec"
)

// App starts a demo app on loopback ports chosen by the kernel; every
// listener named with "on" in o (any non-empty value) is bound to
// 127.0.0.1:0. It is shut down at cleanup.
func App(t testing.TB, o demoapp.Options) *demoapp.Server {
	t.Helper()
	for _, a := range []*string{&o.Listen, &o.GRPCListen, &o.TCPEcho, &o.UDPEcho} {
		if *a != "" {
			*a = "127.0.0.1:0"
		}
	}
	s, err := demoapp.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("demo app %s: %v", o.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
		<-s.Done()
	})
	return s
}

// FreeAddr returns a loopback address whose TCP and UDP ports were both free
// a moment ago (for bootstrap fields that want a fixed address). The port
// comes from loopback.FreePorts, below the kernel's ephemeral range: one
// taken from ":0" and released could be handed to any connection or
// listener of the tests other packages run at the same time before the
// proxy binds it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ports, err := loopback.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
}

// Port returns the port of a "host:port" address or net.Addr.
func Port(t testing.TB, a any) int32 {
	t.Helper()
	s := fmt.Sprint(a)
	_, ps, err := net.SplitHostPort(s)
	if err != nil {
		t.Fatalf("address %q: %v", s, err)
	}
	n, _ := strconv.Atoi(ps)
	return int32(n)
}

// K parses "ns/name".
func K(nsName string) spec.Key {
	for i := range len(nsName) {
		if nsName[i] == '/' {
			return spec.Key{Namespace: nsName[:i], Name: nsName[i+1:]}
		}
	}
	panic("proxytest.K: want ns/name, got " + nsName)
}

// Service is a service with one port and its endpoints.
func Service(nsName string, port int32, proto spec.Protocol, eps ...spec.Endpoint) spec.Service {
	return spec.Service{Key: K(nsName), Ports: []spec.Port{{Name: string(proto), Port: port, Protocol: proto}}, Endpoints: eps}
}

// AppEndpoint is an unmeshed endpoint: the app itself at addr, serving
// servicePort. No preamble is sent to it.
func AppEndpoint(t testing.TB, addr any, servicePort int32) spec.Endpoint {
	t.Helper()
	host, _, _ := net.SplitHostPort(fmt.Sprint(addr))
	return spec.Endpoint{Addr: host, Port: Port(t, addr), ServicePort: servicePort, Ready: true}
}

// SidecarEndpoint is a meshed endpoint: a Causeway proxy's inbound listener,
// serving every port of the service (ServicePort 0).
func SidecarEndpoint(t testing.TB, addr any) spec.Endpoint {
	t.Helper()
	host, _, _ := net.SplitHostPort(fmt.Sprint(addr))
	return spec.Endpoint{Addr: host, Port: Port(t, addr), Ready: true}
}

// Compile builds a snapshot from in and compiles node's config, failing the
// test on any error diagnostic.
func Compile(t testing.TB, in spec.Input, node spec.Node) *spec.NodeConfig {
	t.Helper()
	s, diags := spec.Build(in, spec.BuildOptions{})
	if diags.HasErrors() {
		t.Fatalf("spec.Build: %v", diags.Err())
	}
	return spec.Compile(s, node)
}

// Scrape fetches a Prometheus text endpoint and parses it with expfmt.
func Scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mfs
}

// Sum adds the values (counter, gauge or histogram count) of the series of
// family name whose labels include every pair of want.
func Sum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	var total float64
	for _, m := range mf.Metric {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, lp := range m.Label {
			if lp.GetName() == k && lp.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// HTTPServer serves h on a loopback port until cleanup and returns its
// address.
func HTTPServer(t testing.TB, h http.Handler) (string, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Close()
		<-done
	})
	return ln.Addr().String(), s
}
