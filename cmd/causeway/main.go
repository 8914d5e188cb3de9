// Command causeway is Causeway's one binary. This file holds the list of
// subcommands; each lives in its own file and only parses flags and wires
// packages together.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code out of a subcommand: 1 for invalid
// input, 2 for usage errors.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "causeway",
		Short:         "Causeway: SMI and multi-mesh interoperability gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	// The registry of subcommands, in the order `causeway --help` shows them.
	// Add one line per command; keep the list visible here (STYLE.md).
	root.AddCommand(
		newVersionCmd(),
		newDemoAppCmd(),
		newProxyCmd(),
		newGatewayCmd(),
		newValidateCmd(),
		newTranslateCmd(),
		newCheckCmd(),
		newIdentityCmd(),
		newControlCmd(),
		newLinkCmd(),
		newExportCmd(),
		newUpCmd(),
		newStatCmd(),
		newTapCmd(),
		newLoadCmd(),
		newInjectCmd(), newInitRedirectCmd(),
	)
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	return runIO(args, os.Stdin, os.Stdout, os.Stderr)
}

// runIO is run with explicit standard streams, so tests can call commands
// in-process and read what they print.
func runIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "causeway:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "causeway:", err)
	// cobra reports unknown commands and flags as plain errors: usage.
	return 2
}

var version = "dev" // set with -ldflags "-X main.version=..."

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version) },
	}
}
