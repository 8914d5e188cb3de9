package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	controlrest "github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/federation"
)

// linkClient talks to a running control plane's /api/v1/links.
type linkClient struct {
	base string
	http *http.Client
}

func newLinkCmd() *cobra.Command {
	var api string
	cmd := &cobra.Command{
		Use:   "link generate|apply|list|remove",
		Short: "Link this cluster with another: peering tokens, links and their state",
		Long: `Manage federation links of a running control plane (causeway control
--cluster NAME --federation-listen ADDR) through its REST API (--control-api).

  causeway link generate --ttl 10m     on cluster A: print a one-time peering token
  causeway link apply TOKEN            on cluster B: peer with A (TOKEN, -f FILE or -f -)
  causeway link list                   links, their state and imported services
  causeway link remove CLUSTER         revoke a link on both sides

A token carries A's federation address, trust domain, CA bundle and a
one-time secret: treat it as a password until it is used or expires.`,
	}
	cmd.PersistentFlags().StringVar(&api, "control-api", "http://127.0.0.1:15000", "control plane REST API (URL or host:port)")
	client := func() *linkClient {
		base := api
		if !strings.Contains(base, "://") {
			base = "http://" + base
		}
		return &linkClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 60 * time.Second}}
	}

	var ttl time.Duration
	var output string
	gen := &cobra.Command{
		Use:   "generate [--ttl 10m]",
		Short: "Print a one-time peering token for another cluster to apply",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r controlrest.TokenResponse
			if err := client().do(cmd.Context(), http.MethodPost, "/api/v1/links/tokens", controlrest.TokenRequest{TTL: ttl.String()}, &r); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("link generate: %w", err)}
			}
			if output == "json" {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			fmt.Fprintln(cmd.OutOrStdout(), r.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token valid until %s; apply it once on the other cluster: causeway link apply TOKEN\n", r.Expires.UTC().Format(time.RFC3339))
			return nil
		},
	}
	gen.Flags().DurationVar(&ttl, "ttl", 10*time.Minute, "how long the token may be used (at most 24h)")
	gen.Flags().StringVarP(&output, "output", "o", "token", "token (one line) or json")

	var file string
	apply := &cobra.Command{
		Use:   "apply (TOKEN | -f FILE | -f -)",
		Short: "Peer with the cluster that generated TOKEN",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok, err := readToken(cmd, args, file)
			if err != nil {
				return err
			}
			var st federation.Status
			if err := client().do(cmd.Context(), http.MethodPost, "/api/v1/links", controlrest.ApplyRequest{Token: tok}, &st); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("link apply: %w", err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "linked with cluster %s (%s), state %s\n", st.Cluster, st.TrustDomain, st.State)
			return nil
		},
	}
	apply.Flags().StringVarP(&file, "filename", "f", "", "read the token from FILE (- for stdin)")

	list := &cobra.Command{
		Use:   "list [-o table|json|yaml]",
		Short: "List links with their state, gateways and imported services",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r struct {
				Items []federation.Status `json:"items"`
			}
			if err := client().do(cmd.Context(), http.MethodGet, "/api/v1/links", nil, &r); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("link list: %w", err)}
			}
			return printLinks(cmd.OutOrStdout(), output, r.Items)
		},
	}
	list.Flags().StringVarP(&output, "output", "o", "table", "table, json or yaml")

	remove := &cobra.Command{
		Use:   "remove CLUSTER",
		Short: "Revoke the link to CLUSTER: both sides drop every import and the other's bundle",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := client().do(cmd.Context(), http.MethodDelete, "/api/v1/links/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("link remove: %w", err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "link to cluster %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(gen, apply, list, remove)
	return cmd
}

func readToken(cmd *cobra.Command, args []string, file string) (string, error) {
	switch {
	case len(args) == 1 && file != "":
		return "", usageErr("link apply: give TOKEN or -f, not both")
	case len(args) == 1:
		return args[0], nil
	case file == "-":
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20))
		return strings.TrimSpace(string(b)), err
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", &exitError{code: 1, err: fmt.Errorf("link apply: %w", err)}
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", usageErr("link apply: TOKEN or -f FILE is required")
}

// do sends body as JSON and decodes a 2xx answer into out; any other
// answer becomes an error carrying the API's {"error"} message.
func (c *linkClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w (is `causeway control` running with --federation-listen? see --control-api)", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	return json.Unmarshal(b, out)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printLinks(w io.Writer, output string, items []federation.Status) error {
	switch output {
	case "json":
		return writeJSON(w, items)
	case "yaml":
		b, err := yaml.Marshal(items)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "table":
	default:
		return usageErr("link list: -o %q: want table, json or yaml", output)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tTRUST DOMAIN\tSTATE\tCONNECTED\tLAST SEEN\tGATEWAYS\tIMPORTS")
	for _, s := range items {
		seen := "-"
		if !s.LastSeen.IsZero() {
			seen = time.Since(s.LastSeen).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\n", s.Cluster, s.TrustDomain, s.State, s.Connected, seen,
			orDash(strings.Join(s.Gateways, ",")), orDash(strings.Join(s.Imports, ",")))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
