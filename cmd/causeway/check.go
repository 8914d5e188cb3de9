package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/internal/routecheck"
)

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check what the mesh would do, without running it",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return usageErr("check needs a subcommand: routes") },
	}
	cmd.AddCommand(newCheckRoutesCmd())
	return cmd
}

func newCheckRoutesCmd() *cobra.Command {
	var in inputFlags
	var tests, output string
	var minCoverage float64
	cmd := &cobra.Command{
		Use:   "routes -f PATH... --tests FILE",
		Short: "Run route and access test cases against the compiled model",
		Long: `check routes compiles the manifests and runs each case of the tests file:
a caller, a service, a method, a path and headers, with the backends (and
weights) the request must reach and whether access is allowed. The answers
come from the same code the proxy runs per request. It prints failures and
coverage (route matches, split backends and access rules exercised).
Exit status: 0 all passed, 1 a case failed, coverage is below --min-coverage,
or the manifests are invalid; 2 usage.

Tests file:
  tests:
  - name: buyer lists books
    caller: bookbuyer/bookbuyer      # ns/serviceaccount or a SPIFFE ID
    service: bookstore.bookstore     # ns/name or a host name
    method: GET
    path: /books-bought
    headers: {client-app: bookbuyer}
    expect:
      backends: {bookstore/bookstore-v1: 90, bookstore/bookstore-v2: 10}
      access: allow`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tests == "" {
				return usageErr("--tests FILE is required")
			}
			if output != "text" && output != "json" {
				return usageErr("-o %q: want text or json", output)
			}
			if minCoverage < 0 || minCoverage > 100 {
				return usageErr("--min-coverage %v: want a percentage from 0 to 100", minCoverage)
			}
			data, err := os.ReadFile(tests)
			if err != nil {
				return usageErr("--tests: %v", err)
			}
			file, err := routecheck.Parse(data)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("%s: %v", tests, err)}
			}
			snap, diags, ignored, err := in.load(cmd)
			if err != nil {
				return err
			}
			if diags.HasErrors() {
				writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
				return &exitError{code: 1, err: fmt.Errorf("invalid manifests: %s", count(len(diags.Errors()), "error"))}
			}
			rep, err := routecheck.Run(snap, file)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				writeCheckReport(cmd.OutOrStdout(), rep)
			}
			switch {
			case rep.Failed() > 0:
				return &exitError{code: 1, err: fmt.Errorf("%d of %d cases failed", rep.Failed(), len(rep.Results))}
			case rep.Coverage.Percent() < minCoverage:
				return &exitError{code: 1, err: fmt.Errorf("coverage %.1f%% is below --min-coverage %.1f%%", rep.Coverage.Percent(), minCoverage)}
			}
			return nil
		},
	}
	in.register(cmd)
	cmd.Flags().StringVar(&tests, "tests", "", "YAML file of test cases")
	cmd.Flags().Float64Var(&minCoverage, "min-coverage", 0, "fail when coverage (percent) is below this")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func writeCheckReport(w io.Writer, rep *routecheck.Report) {
	for _, r := range rep.Results {
		if r.Passed {
			fmt.Fprintf(w, "PASS %s\n", r.Name)
			continue
		}
		fmt.Fprintf(w, "FAIL %s\n", r.Name)
		for _, f := range r.Failures {
			fmt.Fprintf(w, "     %s\n", f)
		}
	}
	c := rep.Coverage
	fmt.Fprintf(w, "%d of %d cases passed\n", len(rep.Results)-rep.Failed(), len(rep.Results))
	fmt.Fprintf(w, "coverage %.1f%%: route matches %d/%d, split backends %d/%d, access rules %d/%d\n",
		c.Percent(), c.RouteMatches.Hit, c.RouteMatches.Total, c.SplitBackends.Hit, c.SplitBackends.Total, c.AccessRules.Hit, c.AccessRules.Total)
	if len(c.Missed) > 0 {
		fmt.Fprintf(w, "not exercised:\n  %s\n", strings.Join(c.Missed, "\n  "))
	}
}
