package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/causeway-mesh/causeway/control"
	"github.com/causeway-mesh/causeway/control/metrics"
	"github.com/causeway-mesh/causeway/control/rest"
	"github.com/causeway-mesh/causeway/spec"
)

// scriptedSource plays back fixed proxy counters, one set per Refresh.
type scriptedSource struct {
	sets [][]metrics.Scrape
	n    int
}

func (s *scriptedSource) Scrape(context.Context) ([]metrics.Scrape, error) {
	set := s.sets[min(s.n, len(s.sets)-1)]
	s.n++
	return set, nil
}

// statAPI serves the real REST API of a control plane holding a bookstore
// snapshot, with two scrapes 10s apart: bookbuyer called bookstore 100
// times (90 to v1, 9 of them failing; 10 to v2), bookthief 20 times (v1).
// So v1: 110 requests, 101 ok (91.80%), 11 rps; half of every flow's
// requests took under 1ms and all under 10ms, which the histogram
// quantiles give as p50 1.0ms and p99 9.8ms (linear within a bucket).
func statAPI(t *testing.T) string {
	t.Helper()
	key := func(ns, name string) spec.Key { return spec.Key{Namespace: ns, Name: name} }
	port := []spec.Port{{Name: "http", Port: 14001, Protocol: spec.ProtocolHTTP}}
	snap, diags := spec.Build(spec.Input{
		Services: []spec.Service{{Key: key("bookstore", "bookstore"), Ports: port},
			{Key: key("bookstore", "bookstore-v1"), Ports: port}, {Key: key("bookstore", "bookstore-v2"), Ports: port}},
		Splits: []spec.Split{{Key: key("bookstore", "split"), Root: key("bookstore", "bookstore"),
			Backends: []spec.Backend{{Service: key("bookstore", "bookstore-v1"), Weight: 90000}, {Service: key("bookstore", "bookstore-v2"), Weight: 10000}}}},
	}, spec.BuildOptions{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	srv := control.New(control.Options{Logger: slog.New(slog.DiscardHandler)})
	if !srv.Publish(snap, diags) {
		t.Fatal("snapshot refused")
	}
	node := func(sa string) spec.Node {
		return spec.Node{ID: sa, Identity: spiffeid.RequireFromString("spiffe://cluster.local/ns/" + sa + "/sa/" + sa)}
	}
	// Latency buckets: half the requests under 1ms, all under 10ms.
	flow := func(ok, failed float64) metrics.Flow {
		n := ok + failed
		return metrics.Flow{Success: ok, Failure: failed, Latency: []metrics.Bucket{{UpperBound: .001, Count: n / 2}, {UpperBound: .01, Count: n}, {UpperBound: math.Inf(1), Count: n}}}
	}
	out := func(backend string) metrics.FlowKey {
		return metrics.FlowKey{Direction: "outbound", Service: "bookstore/bookstore", Backend: "bookstore/" + backend}
	}
	src := &scriptedSource{sets: [][]metrics.Scrape{
		{{Node: node("bookbuyer"), Flows: map[metrics.FlowKey]metrics.Flow{}}, {Node: node("bookthief"), Flows: map[metrics.FlowKey]metrics.Flow{}}},
		{
			{Node: node("bookbuyer"), Flows: map[metrics.FlowKey]metrics.Flow{out("bookstore-v1"): flow(81, 9), out("bookstore-v2"): flow(10, 0)}},
			{Node: node("bookthief"), Flows: map[metrics.FlowKey]metrics.Flow{out("bookstore-v1"): flow(20, 0)}},
		},
	}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	agg := &metrics.Aggregator{Source: src, Now: func() time.Time { return now }}
	for range 2 {
		if err := agg.Refresh(t.Context()); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Second)
	}
	hs := httptest.NewServer((&rest.API{Control: srv, Metrics: agg}).Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestStat(t *testing.T) {
	api := statAPI(t)
	tests := []struct {
		name string
		args []string
		want []string // lines, fields separated by any spaces
	}{
		{"services by default", nil, []string{
			"NAMESPACE SERVICE SUCCESS RPS P50 P99",
			"bookstore bookstore - 0.0 - -",
			"bookstore bookstore-v1 91.80% 11.0 1.0ms 9.8ms",
			"bookstore bookstore-v2 100.00% 1.0 1.0ms 9.8ms",
		}},
		{"split backends with weights", []string{"ts", "-n", "bookstore"}, []string{
			"NAMESPACE SPLIT APEX BACKEND WEIGHT SUCCESS RPS P50 P99",
			"bookstore split bookstore bookstore-v1 90 91.80% 11.0 1.0ms 9.8ms",
			"bookstore split bookstore bookstore-v2 10 100.00% 1.0 1.0ms 9.8ms",
		}},
		{"namespaces", []string{"ns"}, []string{
			"NAMESPACE SUCCESS RPS P50 P99",
			"bookstore 92.50% 12.0 1.0ms 9.8ms",
		}},
		{"calling workloads", []string{"workload", "-n", "bookstore"}, []string{
			"NAMESPACE SERVICE CALLER SUCCESS RPS P50 P99",
			"bookstore bookstore-v1 serviceaccount/bookbuyer/bookbuyer 90.00% 9.0 1.0ms 9.8ms",
			"bookstore bookstore-v1 serviceaccount/bookthief/bookthief 100.00% 2.0 1.0ms 9.8ms",
			"bookstore bookstore-v2 serviceaccount/bookbuyer/bookbuyer 100.00% 1.0 1.0ms 9.8ms",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runIO(append([]string{"stat", "--api", api}, tc.args...), nil, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				got = append(got, strings.Join(strings.Fields(l), " "))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("stat %v:\n%s\nwant:\n%s", tc.args, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestStatJSONAndErrors(t *testing.T) {
	api := statAPI(t)
	var out, errOut bytes.Buffer
	if code := runIO([]string{"stat", "--api", api, "-n", "bookstore", "-o", "json"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var rows []statRow
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil {
		t.Fatalf("-o json: %v\n%s", err, out.String())
	}
	if len(rows) != 3 || rows[1].Name != "bookstore-v1" || rows[1].Requests != 110 || rows[1].SuccessRate == nil ||
		math.Abs(*rows[1].SuccessRate-101.0/110) > 0.001 || rows[0].SuccessRate != nil {
		t.Fatalf("rows = %+v", rows)
	}
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown resource", []string{"stat", "--api", api, "pods-and-more"}, 2, `unknown resource "pods-and-more"`},
		{"bad output", []string{"stat", "--api", api, "-o", "yaml"}, 2, "-o yaml: want table or json"},
		{"nothing listening", []string{"stat", "--api", "127.0.0.1:1"}, 1, "is `causeway up` or `causeway control` running?"},
		{"--cluster and --api", []string{"stat", "--api", api, "--cluster", "east"}, 2, "give --cluster or --api, not both"},
		{"no such cluster running", []string{"stat", "--cluster", "no-such-cluster-here"}, 1, `stat: --cluster: no cluster "no-such-cluster-here"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := runIO(tc.args, nil, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", code, errOut.String(), tc.code, tc.msg)
			}
		})
	}
}
