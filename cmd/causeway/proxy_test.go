package main

import (
	"strings"
	"testing"
)

func TestProxyUsage(t *testing.T) {
	sample := "../../proxy/testdata/bootstrap-example.yaml"
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no bootstrap", []string{"proxy"}, 2, "--config is required"},
		{"control without its identity", []string{"proxy", "--config", sample, "--control", "127.0.0.1:1"}, 2, "--control-id"},
		{"control without an SVID source", []string{"proxy", "--config", sample, "--control", "127.0.0.1:1", "--control-id", "spiffe://cluster.local/ns/causeway/sa/control"}, 2, "--control needs an SVID"},
		{"bad service", []string{"proxy", "--config", sample, "--service", "nope"}, 2, `--service "nope"`},
		{"unreadable bootstrap", []string{"proxy", "--config", "testdata/none.yaml"}, 1, "none.yaml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.stderr)
			}
		})
	}
}
