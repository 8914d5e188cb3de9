package main

import (
	"strings"
	"testing"
	"time"

	"github.com/causeway-mesh/causeway/proxy"
)

func TestTapUsageAndErrors(t *testing.T) {
	// A port nothing listens on: the REST API is unreachable. It is chosen
	// below the ephemeral range, where another package's ":0" listener
	// cannot land on it and answer.
	dead := freeAddrs(t, 1)[0]
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bad output", []string{"tap", "-o", "yaml"}, 2, "want text or json"},
		{"negative max", []string{"tap", "-n", "-1"}, 2, "must not be negative"},
		{"control plane unreachable", []string{"tap", "--api", dead}, 1, "control plane REST API"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.stderr)
			}
		})
	}
}

func TestTapFilters(t *testing.T) {
	ev := tapped{Node: "n", TapEvent: proxy.TapEvent{Time: time.Unix(0, 0), Direction: "inbound", Service: "shop/books",
		Caller: "spiffe://cluster.local/ns/shop/sa/web", Method: "GET", Path: "/books/1", Status: 200}}
	cases := []struct {
		f    tapFlags
		want bool
	}{
		{tapFlags{}, true},
		{tapFlags{to: "shop/books"}, true},
		{tapFlags{to: "shop/book"}, false},
		{tapFlags{from: "shop/web"}, true},
		{tapFlags{from: "shop/we"}, false},
		{tapFlags{from: "spiffe://cluster.local/ns/shop/sa/web"}, true},
		{tapFlags{method: "get"}, true},
		{tapFlags{method: "POST"}, false},
		{tapFlags{pathPrefix: "/books"}, true},
		{tapFlags{pathPrefix: "/admin"}, false},
	}
	for _, tc := range cases {
		if got := tc.f.matches(ev); got != tc.want {
			t.Errorf("%+v: matches = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// TestTapTCPFlow: a TCP flow passes the service and caller filters, never a
// method or path filter, and prints its bytes.
func TestTapTCPFlow(t *testing.T) {
	ev := tapped{Node: "n", TapEvent: proxy.TapEvent{Time: time.Unix(0, 0), Direction: "inbound", Protocol: "tcp", Service: "db/mysql",
		Caller: "spiffe://cluster.local/ns/shop/sa/web", Backend: "app", Classification: "success", LatencyMs: 12.5, BytesIn: 120, BytesOut: 4096}}
	cases := []struct {
		f    tapFlags
		want bool
	}{
		{tapFlags{}, true},
		{tapFlags{to: "db/mysql"}, true},
		{tapFlags{from: "shop/web"}, true},
		{tapFlags{method: "GET"}, false},
		{tapFlags{pathPrefix: "/"}, false},
	}
	for _, tc := range cases {
		if got := tc.f.matches(ev); got != tc.want {
			t.Errorf("%+v: matches = %v, want %v", tc.f, got, tc.want)
		}
	}
	line := formatTap(ev)
	for _, want := range []string{"TCP db/mysql", "in=120B", "out=4096B", "success", "caller=spiffe://cluster.local/ns/shop/sa/web"} {
		if !strings.Contains(line, want) {
			t.Errorf("%q lacks %q", line, want)
		}
	}
}
