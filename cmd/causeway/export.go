package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// serviceExport is an MCS ServiceExport (multicluster.x-k8s.io/v1alpha1):
// named after the Service it exports, with nothing else to say.
type serviceExport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// exportListing is one line of `causeway export --list`.
type exportListing struct {
	Service    string   `json:"service"`
	Ports      []string `json:"ports"`
	Identities []string `json:"identities,omitempty"`
	Endpoints  int      `json:"endpoints"`
}

func newExportCmd() *cobra.Command {
	var in inputFlags
	var list bool
	var output string
	cmd := &cobra.Command{
		Use:   "export NAMESPACE/NAME... | export --list -f PATH...",
		Short: "Export services to linked clusters, or list what manifests export",
		Long: `Export prints an MCS ServiceExport for each Service named, to apply with
kubectl apply -f - or to save in a cluster folder of causeway up. Linked
clusters then import the Service as <name>-<cluster> and reach it through
this cluster's east-west gateway. The annotation or label
causeway.dev/export: "true" on the Service does the same.

With --list it reads manifests instead and lists the Services they export,
with ports and identities, as linked clusters will see them.

Exit status: 0 fine, 1 the manifests are invalid, 2 usage.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if list {
				if len(args) > 0 {
					return usageErr("export --list takes -f PATH, not names")
				}
				return listExports(cmd, &in, output)
			}
			if len(in.files) > 0 {
				return usageErr("export NAMESPACE/NAME... prints ServiceExports; give --list to read -f PATH")
			}
			return printExports(cmd.OutOrStdout(), args, output)
		},
	}
	in.register(cmd)
	cmd.Flags().BoolVar(&list, "list", false, "list the Services the manifests given with -f export")
	cmd.Flags().StringVarP(&output, "output", "o", "", "yaml or json (printing); table or json (--list)")
	return cmd
}

// printExports writes one ServiceExport per NAMESPACE/NAME.
func printExports(w io.Writer, names []string, output string) error {
	if len(names) == 0 {
		return usageErr("export: name at least one Service as NAMESPACE/NAME, or give --list -f PATH")
	}
	if output == "" {
		output = "yaml"
	}
	if output != "yaml" && output != "json" {
		return usageErr("-o %q: want yaml or json", output)
	}
	var objs []serviceExport
	for _, n := range names {
		ns, name, ok := strings.Cut(n, "/")
		if !ok {
			return usageErr("export %q: want NAMESPACE/NAME", n)
		}
		for _, part := range []struct{ what, v string }{{"namespace", ns}, {"name", name}} {
			if errs := validation.IsDNS1123Label(part.v); len(errs) > 0 {
				return usageErr("export %q: %s %q: %s", n, part.what, part.v, errs[0])
			}
		}
		var o serviceExport
		o.APIVersion, o.Kind = "multicluster.x-k8s.io/v1alpha1", "ServiceExport"
		o.Metadata.Name, o.Metadata.Namespace = name, ns
		objs = append(objs, o)
	}
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if len(objs) == 1 {
			return enc.Encode(objs[0])
		}
		return enc.Encode(map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	}
	for i, o := range objs {
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		if i > 0 {
			io.WriteString(w, "---\n")
		}
		w.Write(b)
	}
	return nil
}

// listExports loads the manifests and lists what they export.
func listExports(cmd *cobra.Command, in *inputFlags, output string) error {
	if output == "" {
		output = "table"
	}
	if output != "table" && output != "json" {
		return usageErr("-o %q: want table or json", output)
	}
	snap, diags, ignored, err := in.load(cmd)
	if err != nil {
		return err
	}
	if diags.HasErrors() {
		writeDiagnostics(cmd.ErrOrStderr(), diags, ignored)
		return &exitError{code: 1, err: fmt.Errorf("export: the manifests are invalid")}
	}
	var out []exportListing
	for _, s := range snap.Services {
		if !s.Export || s.Key.Cluster != "" {
			continue
		}
		e := exportListing{Service: s.Key.Namespace + "/" + s.Key.Name, Endpoints: len(s.Endpoints)}
		for _, p := range s.Ports {
			e.Ports = append(e.Ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
		for _, id := range s.Identities {
			e.Identities = append(e.Identities, id.String())
		}
		out = append(out, e)
	}
	w := cmd.OutOrStdout()
	if output == "json" {
		if out == nil {
			out = []exportListing{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		fmt.Fprintln(w, "no Service is exported (annotate one with causeway.dev/export: \"true\" or add a ServiceExport)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tPORTS\tIDENTITIES\tENDPOINTS")
	for _, e := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", e.Service, strings.Join(e.Ports, ","), cmp.Or(strings.Join(e.Identities, ","), "-"), e.Endpoints)
	}
	return tw.Flush()
}
