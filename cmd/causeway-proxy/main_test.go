package main

import "testing"

// TestRunExitCodes: usage errors (bad flags, stray arguments, a flag
// combination sidecar.Run refuses) exit 2; a leading "proxy" is accepted.
func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"unknown flag", []string{"--nope"}, 2},
		{"stray argument", []string{"--config", "x.yaml", "extra"}, 2},
		{"no --config", nil, 2},
		{"no --config after proxy", []string{"proxy"}, 2},
		{"unreadable bootstrap", []string{"proxy", "--config", "/nonexistent/bootstrap.yaml"}, 1},
		{"token file without a socket", []string{"--config", "testdata/bootstrap.json", "--spiffe-token-file", "testdata/bootstrap.json"}, 2},
		{"missing token file", []string{"--config", "testdata/bootstrap.json", "--spiffe-socket", "unix:///nonexistent.sock", "--spiffe-token-file", "/nonexistent/token"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(tc.args); got != tc.want {
				t.Fatalf("run(%q) = %d, want %d", tc.args, got, tc.want)
			}
		})
	}
}
