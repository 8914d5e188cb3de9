package harness

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// renderCrossing writes the cost of crossing clusters: causeway-gateway ÷
// causeway-mtls, the same two sidecars with and without east's gateway
// between them, and, when causeway-2hop ran, causeway-mtls ÷ causeway-2hop
// (what mTLS between two trust domains adds to two plaintext sidecars).
// Ratios are raw and per CPU second of the pinned systems, as in the load
// tables; "added CPU" is the difference in CPU time per request (per MB
// for TCP) between the two, which does not depend on how much of its core
// each system got.
func renderCrossing(w io.Writer, rep *Report) {
	p := rep.Plan
	if !slices.Contains(p.Systems, SysXDirect) || !slices.Contains(p.Systems, SysXGateway) {
		return
	}
	fmt.Fprintf(w, "## Crossing clusters\n\n")
	fmt.Fprintf(w, "%s and %s are the same west client sidecar and east destination sidecar, mTLS end to end between two trust domains "+
		"(west.bench and east.bench: two `causeway identity serve` processes with their own CAs, each serving the other's bundle as federated; "+
		"east's sidecar in strict mode with a TrafficTarget admitting west's bench/web). %s adds east's east-west gateway (`causeway gateway`) "+
		"between them: outer mTLS from the west sidecar to the gateway, the inner mTLS relayed to the east sidecar. "+
		"Every process of a system is pinned to CPU %s and counted; the Workload APIs (CPU %s) are not.\n\n",
		SysXDirect, SysXGateway, SysXGateway, p.ProxyCores, p.LoadCores)
	crossTable(w, rep, SysXDirect, SysXGateway)
	if slices.Contains(p.Systems, SysCauseway2) {
		fmt.Fprintf(w, "What mTLS between two trust domains adds to two plaintext sidecars (%s ÷ %s):\n\n", SysXDirect, SysCauseway2)
		crossTable(w, rep, SysCauseway2, SysXDirect)
	}
}

// crossTable is one row per load: sys against base.
func crossTable(w io.Writer, rep *Report, base, sys string) {
	fmt.Fprintf(w, "| load | %[1]s rate | %[2]s rate | rate ÷ | %[1]s per CPU s | %[2]s per CPU s | per CPU s ÷ | added CPU | p50 | p50 ÷ | p99 | p99 ÷ |\n", base, sys)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, load := range rep.Plan.Loads {
		b, okB := find(rep.Results, load, base)
		s, okS := find(rep.Results, load, sys)
		if !okB || !okS || b.NA != "" || s.NA != "" {
			why := "not measured"
			if okS && s.NA != "" {
				why = s.NA
			} else if okB && b.NA != "" {
				why = b.NA
			}
			fmt.Fprintf(w, "| %s | n/a: %s | | | | | | | | | | |\n", load, escape(why))
			continue
		}
		u, per := "req/s", "µs/req"
		if load == LoadTCP {
			u, per = "MB/s", "µs/MB"
		}
		added := "-"
		if eb, es := b.PerCPUSecond(), s.PerCPUSecond(); eb > 0 && es > 0 {
			added = fmt.Sprintf("%+.1f %s", 1e6/es-1e6/eb, per)
		}
		lat := func(a, b time.Duration) string {
			if load == LoadTCP {
				return "-"
			}
			return ms(a) + " → " + ms(b)
		}
		latRatio := func(a, b time.Duration) string {
			if load == LoadTCP {
				return "-"
			}
			return ratio(Ratio(float64(b), float64(a)))
		}
		fmt.Fprintf(w, "| %s | %.0f %s | %.0f %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s |\n", load,
			b.Rate, u, s.Rate, u, ratio(Ratio(s.Rate, b.Rate)),
			b.PerCPUSecond(), s.PerCPUSecond(), ratio(Ratio(s.PerCPUSecond(), b.PerCPUSecond())), added,
			lat(b.P50, s.P50), latRatio(b.P50, s.P50), lat(b.P99, s.P99), latRatio(b.P99, s.P99))
	}
	fmt.Fprintln(w)
}
