package main

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestGatewayUsage: `causeway gateway` names the flag it is missing (exit
// 2) and the file it cannot read (exit 1), before binding anything.
func TestGatewayUsage(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no listen", []string{"gateway", "--config", "x.yaml"}, 2, "--listen is required"},
		{"no config source", []string{"gateway", "--listen", "127.0.0.1:0"}, 2, "give --control"},
		{"control without its identity", []string{"gateway", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:1"}, 2, "--control-id"},
		{"unreadable config", []string{"gateway", "--listen", "127.0.0.1:0", "--config", "testdata/none.yaml"}, 1, "none.yaml"},
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

// TestGatewayDeploymentArgs: the gateway Deployment in deploy/base runs
// flags `causeway gateway` has, so the manifest cannot drift from the
// command.
func TestGatewayDeploymentArgs(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/base/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var d struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Args []string `json:"args"`
						} `json:"containers"`
					} `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("deploy/base/gateway.yaml: %v", err)
		}
		if d.Kind == "Deployment" && len(d.Spec.Template.Spec.Containers) == 1 {
			args = d.Spec.Template.Spec.Containers[0].Args
		}
	}
	if len(args) < 2 || args[0] != "gateway" {
		t.Fatalf("deploy/base/gateway.yaml: Deployment args = %q, want `gateway ...`", args)
	}
	cmd := newGatewayCmd()
	if err := cmd.ParseFlags(args[1:]); err != nil {
		t.Fatalf("deploy/base/gateway.yaml: args %q: %v", args, err)
	}
	for _, name := range []string{"listen", "admin", "control", "control-id", "spiffe-socket", "node"} {
		if !cmd.Flags().Changed(name) {
			t.Errorf("deploy/base/gateway.yaml: the Deployment does not set --%s", name)
		}
	}
}
