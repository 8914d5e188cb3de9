package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/internal/localmesh"
)

type statFlags struct {
	api, namespace, output string
	all                    bool
	// cluster picks the REST API of one cluster of a running multi-cluster
	// `causeway up` (its run directory says where it listens).
	cluster string
}

// statRow is one line of `causeway stat`, and one element of -o json.
type statRow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Caller is set for workloads: who called Name (kind/ns/name).
	Caller string `json:"caller,omitempty"`
	// Apex, Backend and Weight are set for TrafficSplits.
	Apex        string   `json:"apex,omitempty"`
	Backend     string   `json:"backend,omitempty"`
	Weight      string   `json:"weight,omitempty"`
	Requests    float64  `json:"requests"`
	SuccessRate *float64 `json:"successRate"` // null without requests
	RPS         float64  `json:"rps"`
	P50ms       float64  `json:"p50ms"`
	P99ms       float64  `json:"p99ms"`
}

// statResources maps what a user types to what is shown.
var statResources = map[string]string{
	"svc": "services", "service": "services", "services": "services",
	"ts": "trafficsplits", "trafficsplit": "trafficsplits", "trafficsplits": "trafficsplits",
	"ns": "namespaces", "namespace": "namespaces", "namespaces": "namespaces",
	"wl": "workloads", "workload": "workloads", "workloads": "workloads",
	"deploy": "workloads", "deployment": "workloads", "deployments": "workloads", "po": "workloads", "pods": "workloads",
}

func newStatCmd() *cobra.Command {
	var f statFlags
	cmd := &cobra.Command{
		Use:   "stat [svc|ts|ns|workload]",
		Short: "Success rate, rps and p50/p99 latency per service, split backend, namespace or calling workload",
		Long: `Read the control plane's SMI TrafficMetrics API (causeway up, causeway control)
and print success rate, requests per second and p50/p99 latency:
  svc       per service (default)
  ts        per TrafficSplit backend, with its weight
  ns        per namespace
  workload  per calling workload and the service it calls (deploy, po: the same)
The numbers cover the API's window (the last few scrapes of the sidecars).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runStat(cmd, f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.api, "api", "127.0.0.1:15000", "control plane REST API address (host:port or URL)")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "only this namespace (default: every namespace)")
	fl.BoolVarP(&f.all, "all-namespaces", "A", false, "every namespace (the default when -n is not given)")
	fl.StringVarP(&f.output, "output", "o", "table", "table or json")
	fl.StringVar(&f.cluster, "cluster", "", "a cluster of a running multi-cluster `causeway up` (instead of --api)")
	return cmd
}

func runStat(cmd *cobra.Command, f statFlags, args []string) error {
	res := "services"
	if len(args) == 1 {
		r, ok := statResources[strings.ToLower(args[0])]
		if !ok {
			return usageErr("stat: unknown resource %q (want svc, ts, ns or workload)", args[0])
		}
		res = r
	}
	if f.output != "table" && f.output != "json" {
		return usageErr("stat: -o %s: want table or json", f.output)
	}
	base := f.api
	if f.cluster != "" {
		if cmd.Flags().Changed("api") {
			return usageErr("stat: give --cluster or --api, not both")
		}
		info, err := localmesh.FindCluster(f.cluster)
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("stat: --cluster: %w", err)}
		}
		base = info.REST
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	api := &statClient{base: strings.TrimSuffix(base, "/"), http: &http.Client{Timeout: 5 * time.Second}, ctx: cmd.Context()}
	var nss []string
	if f.namespace != "" && !f.all {
		nss = []string{f.namespace}
	} else {
		l, err := api.list("namespaces")
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		for _, it := range l.Items {
			nss = append(nss, it.Name)
		}
	}
	rows, err := api.rows(res, nss)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	out := cmd.OutOrStdout()
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []statRow{} // [] rather than null: nothing measured yet
		}
		return enc.Encode(rows)
	}
	printStat(out, res, rows)
	return nil
}

type statClient struct {
	base string
	http *http.Client
	ctx  context.Context
}

func (c *statClient) get(p string) (*metrics.TrafficMetricsList, error) {
	u := c.base + path.Join(metrics.BasePath, p)
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stat: %w (is `causeway up` or `causeway control` running? see --api)", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stat: GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var l metrics.TrafficMetricsList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, fmt.Errorf("stat: GET %s: %w", u, err)
	}
	return &l, nil
}

func (c *statClient) list(p string) (*metrics.TrafficMetricsList, error) { return c.get(p) }

func (c *statClient) rows(res string, nss []string) ([]statRow, error) {
	var rows []statRow
	switch res {
	case "namespaces":
		l, err := c.list("namespaces")
		if err != nil {
			return nil, err
		}
		for _, it := range l.Items {
			if slices.Contains(nss, it.Name) {
				rows = append(rows, rowOf(it, "", it.Name))
			}
		}
	case "services", "trafficsplits":
		for _, ns := range nss {
			l, err := c.list(path.Join("namespaces", url.PathEscape(ns), res))
			if err != nil {
				return nil, err
			}
			for _, it := range l.Items {
				r := rowOf(it, ns, it.Name)
				if it.Backend != nil {
					r.Apex, r.Backend, r.Weight = it.Backend.Apex, it.Backend.Name, it.Backend.Weight
				}
				rows = append(rows, r)
			}
		}
	case "workloads":
		// Callers of every service, as seen by the callers' sidecars, and
		// linked clusters, as seen by the service's (edges with direction
		// "from"; a cluster's has no namespace).
		for _, ns := range nss {
			l, err := c.list(path.Join("namespaces", url.PathEscape(ns), "services"))
			if err != nil {
				return nil, err
			}
			for _, svc := range l.Items {
				edges, err := c.get(path.Join("namespaces", url.PathEscape(ns), "services", url.PathEscape(svc.Name), "edges"))
				if err != nil {
					return nil, err
				}
				for _, e := range edges.Items {
					if e.Edge == nil || e.Edge.Direction != "from" || e.Edge.Resource == nil {
						continue
					}
					r := rowOf(e, ns, svc.Name)
					er := e.Edge.Resource
					r.Caller = strings.ToLower(er.Kind) + "/" + er.Namespace + "/" + er.Name
					if er.Namespace == "" {
						r.Caller = strings.ToLower(er.Kind) + "/" + er.Name
					}
					rows = append(rows, r)
				}
			}
		}
	}
	return rows, nil
}

func rowOf(it *metrics.TrafficMetrics, ns, name string) statRow {
	r := statRow{Namespace: ns, Name: name}
	if it.TrafficMetrics == nil {
		return r
	}
	var ok, failed float64
	for _, m := range it.Metrics {
		if m == nil || m.Value == nil {
			continue
		}
		v := m.Value.AsApproximateFloat64()
		switch m.Name {
		case metrics.MetricSuccessRate:
			r.SuccessRate = &v
		case metrics.MetricRPS:
			r.RPS = v
		case "p50_response_latency":
			r.P50ms = v
		case "p99_response_latency":
			r.P99ms = v
		case "success_count":
			ok = v
		case "failure_count":
			failed = v
		}
	}
	r.Requests = ok + failed
	return r
}

func printStat(out io.Writer, res string, rows []statRow) {
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	defer tw.Flush()
	switch res {
	case "trafficsplits":
		fmt.Fprintln(tw, "NAMESPACE\tSPLIT\tAPEX\tBACKEND\tWEIGHT\tSUCCESS\tRPS\tP50\tP99")
	case "workloads":
		fmt.Fprintln(tw, "NAMESPACE\tSERVICE\tCALLER\tSUCCESS\tRPS\tP50\tP99")
	case "namespaces":
		fmt.Fprintln(tw, "NAMESPACE\tSUCCESS\tRPS\tP50\tP99")
	default:
		fmt.Fprintln(tw, "NAMESPACE\tSERVICE\tSUCCESS\tRPS\tP50\tP99")
	}
	for _, r := range rows {
		nums := fmt.Sprintf("%s\t%.1f\t%s\t%s", rate(r), r.RPS, latency(r, r.P50ms), latency(r, r.P99ms))
		switch res {
		case "trafficsplits":
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Apex, r.Backend, r.Weight, nums)
		case "workloads":
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Caller, nums)
		case "namespaces":
			fmt.Fprintf(tw, "%s\t%s\n", r.Name, nums)
		default:
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Namespace, r.Name, nums)
		}
	}
}

func rate(r statRow) string {
	if r.SuccessRate == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", *r.SuccessRate*100)
}

func latency(r statRow, ms float64) string {
	if r.Requests == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", ms)
}
