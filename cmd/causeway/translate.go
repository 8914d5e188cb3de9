package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newTranslateCmd() *cobra.Command {
	var in inputFlags
	var to, output string
	cmd := &cobra.Command{
		Use:   "translate -f PATH... --to spec",
		Short: "Print what manifests mean in Causeway's model (or, later, another mesh's)",
		Long: `Translate reads manifests like validate and prints the canonical snapshot they
build: the same inputs, in any order, always print the same bytes. Warnings and
ignored objects go to stderr; when the inputs are invalid nothing is printed on
stdout and the exit status is 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch to {
			case "spec":
			case "istio", "linkerd", "gateway-api":
				return usageErr("--to %s: not implemented yet (only --to spec for now)", to)
			default:
				return usageErr("--to %q: want spec, istio, linkerd or gateway-api", to)
			}
			if output != "json" && output != "yaml" {
				return usageErr("-o %q: want json or yaml", output)
			}
			snap, diags, ignored, err := in.load(cmd)
			if err != nil {
				return err
			}
			writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
			if diags.HasErrors() {
				return &exitError{code: 1, err: fmt.Errorf("invalid: %s", count(len(diags.Errors()), "error"))}
			}
			out := snap.JSON()
			if output == "yaml" {
				// Converted from the canonical JSON, so YAML keys come out
				// sorted and the bytes are as deterministic as the JSON.
				if out, err = yaml.JSONToYAML(out); err != nil {
					return fmt.Errorf("render YAML: %w", err)
				}
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	in.register(cmd)
	cmd.Flags().StringVar(&to, "to", "spec", "target: spec (istio, linkerd, gateway-api: not implemented yet)")
	cmd.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	return cmd
}
