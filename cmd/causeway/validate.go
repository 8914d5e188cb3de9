package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/spec"
)

// inputFlags are the flags validate and translate share: what to read and
// how to translate it.
type inputFlags struct {
	files       []string
	strict      bool
	trustDomain string
	namespace   string
}

func (f *inputFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVarP(&f.files, "filename", "f", nil, "manifest file or directory (recursive: *.yaml, *.yml, *.json), or - for stdin; repeatable")
	fl.BoolVar(&f.strict, "strict", false, "references to objects not among the inputs are errors, not warnings")
	fl.StringVar(&f.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of workload identities")
	fl.StringVarP(&f.namespace, "namespace", "n", "default", "namespace of documents that name none")
}

// load checks the flags and runs the pipeline. Only usage problems are
// returned as errors (exit 2); problems in the manifests are diagnostics.
func (f *inputFlags) load(cmd *cobra.Command) (*spec.Snapshot, spec.Diagnostics, []adapters.Object, error) {
	if len(f.files) == 0 {
		return nil, nil, nil, usageErr("no input: give -f PATH (a file, a directory or - for stdin)")
	}
	if _, err := spiffeid.TrustDomainFromString(f.trustDomain); err != nil {
		return nil, nil, nil, usageErr("--trust-domain %q: %v", f.trustDomain, err)
	}
	if errs := validation.IsDNS1123Label(f.namespace); len(errs) > 0 {
		return nil, nil, nil, usageErr("--namespace %q: %s", f.namespace, errs[0])
	}
	opts := pipeline.Options{TrustDomain: f.trustDomain, DefaultNamespace: f.namespace, Strict: f.strict}
	snap, diags, ignored, err := pipeline.Load(f.files, cmd.InOrStdin(), opts)
	if err != nil {
		return nil, nil, nil, usageErr("%v", err)
	}
	return snap, diags, ignored, nil
}

func newValidateCmd() *cobra.Command {
	var in inputFlags
	var output string
	cmd := &cobra.Command{
		Use:   "validate -f PATH...",
		Short: "Check Kubernetes and SMI manifests and report every problem",
		Long: `Validate reads manifests the way kubectl apply -f would, translates them into
Causeway's model and reports every problem at once, each naming its file, line,
object and field. Exit status: 0 valid (warnings allowed), 1 invalid, 2 usage.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageErr("-o %q: want text or json", output)
			}
			snap, diags, ignored, err := in.load(cmd)
			if err != nil {
				return err
			}
			valid := !diags.HasErrors()
			if output == "json" {
				if err := writeValidateJSON(cmd.OutOrStdout(), valid, diags, ignored); err != nil {
					return err
				}
			} else {
				writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
				if valid {
					fmt.Fprintf(cmd.OutOrStdout(), "valid: %s\n", summary(snap, diags, ignored))
				}
			}
			if !valid {
				return &exitError{code: 1, err: fmt.Errorf("invalid: %s", count(len(diags.Errors()), "error"))}
			}
			return nil
		},
	}
	in.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// writeDiagnostics prints every diagnostic (FILE:LINE: Kind ns/name: field:
// message), then the objects no translator read, so nothing is dropped
// without a word.
func writeDiagnostics(w io.Writer, diags spec.Diagnostics, ignored []adapters.Object) {
	for _, d := range diags {
		fmt.Fprintln(w, d.String())
	}
	for _, o := range ignored {
		fmt.Fprintln(w, "ignored:", pipeline.Ignored(o))
	}
}

// ignoredJSON is one ignored object in `validate -o json`.
type ignoredJSON struct {
	Source     spec.Source `json:"source"`
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Namespace  string      `json:"namespace,omitempty"`
	Name       string      `json:"name,omitempty"`
}

func writeValidateJSON(w io.Writer, valid bool, diags spec.Diagnostics, ignored []adapters.Object) error {
	out := struct {
		Valid       bool              `json:"valid"`
		Diagnostics []spec.Diagnostic `json:"diagnostics"`
		Ignored     []ignoredJSON     `json:"ignored"`
	}{Valid: valid, Diagnostics: append([]spec.Diagnostic{}, diags...), Ignored: []ignoredJSON{}}
	for _, o := range ignored {
		out.Ignored = append(out.Ignored, ignoredJSON{o.Source, o.APIVersion, o.Kind, o.Namespace, o.Name})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func summary(s *spec.Snapshot, diags spec.Diagnostics, ignored []adapters.Object) string {
	return fmt.Sprintf("%s, %s, %s, %s (%s, %s ignored)",
		count(len(s.Services), "service"), count(len(s.Routes), "route"), count(len(s.Splits), "split"),
		count(len(s.Policies), "access policy"), count(len(diags), "warning"), count(len(ignored), "object"))
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	switch {
	case strings.HasSuffix(what, "y"):
		what = strings.TrimSuffix(what, "y") + "ies"
	default:
		what += "s"
	}
	return fmt.Sprintf("%d %s", n, what)
}
