package harness

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Targets of issue 3 for Causeway one hop.
const (
	TargetRPSRatio = 0.7        // × the best peer's HTTP/1.1 max rps, one core
	TargetIdleRSS  = 15_000_000 // bytes (15 MB, decimal: the stricter reading)
)

// Environment describes where the figures were taken, for the report head.
type Environment struct {
	Date, Machine, Commit, LoadAvg string
	Nice                           string   // niceness every process of the run had
	Tools                          []string // "haproxy 2.6.12", ...
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func ms(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

func pct(cpu, wall time.Duration) string {
	if wall <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*cpu.Seconds()/wall.Seconds())
}

func ratio(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

// best is the peers' best figure for a load: the highest rate and the lowest
// latencies (each from whichever peer had it).
type best struct {
	rate, perCPU  float64
	p50, p99      time.Duration
	rateBy, effBy string
	rateCore      time.Duration // CPU time of the peer with the best rate
	rateWall      time.Duration
}

func bestPeer(results []Result, load string) best {
	var b best
	for _, r := range results {
		if r.Load != load || r.NA != "" || !IsPeer(r.System) {
			continue
		}
		if r.Rate > b.rate {
			b.rate, b.rateBy, b.rateCore, b.rateWall = r.Rate, r.System, r.ProxyCPU, r.Wall
		}
		if e := r.PerCPUSecond(); e > b.perCPU {
			b.perCPU, b.effBy = e, r.System
		}
		if r.P50 > 0 && (b.p50 == 0 || r.P50 < b.p50) {
			b.p50 = r.P50
		}
		if r.P99 > 0 && (b.p99 == 0 || r.P99 < b.p99) {
			b.p99 = r.P99
		}
	}
	return b
}

// Ratio is v / base, or 0 when either is missing.
func Ratio(v, base float64) float64 {
	if v <= 0 || base <= 0 {
		return 0
	}
	return v / base
}

func loadTitle(p Plan, load string) string {
	switch load {
	case LoadH1Max:
		return fmt.Sprintf("HTTP/1.1 max rps — wrk -t1 -c%d -d%ss --latency", p.Conns, seconds(p.Duration))
	case LoadH1Fixed:
		return fmt.Sprintf("HTTP/1.1 fixed rate — %d req/s over %d connections for %ss, open loop (latency from each request's due time)", p.Rate, p.RateConns, seconds(p.Duration))
	case LoadH2:
		return fmt.Sprintf("HTTP/2 (h2c) — h2load -t1 -c%d -m%d -D %s", p.H2Clients, p.H2Streams, seconds(p.Duration))
	case LoadGRPC:
		return fmt.Sprintf("gRPC-shaped unary calls (h2c) — h2load -t1 -c%d -m%d -D %s, POST of one %d-byte gRPC message, content-type application/grpc, te: trailers; the upstream answers its usual body (no grpc-status trailers), so this measures the request-body path of a proxy, not gRPC status handling",
			p.H2Clients, p.H2Streams, seconds(p.Duration), len(GRPCMessage))
	case LoadTCP:
		return fmt.Sprintf("TCP bulk — %d MiB on one connection, median of %d", p.BulkBytes>>20, max(1, p.BulkReps))
	}
	return load
}

// Render writes the report as Markdown: one table per load, idle memory,
// whether the targets were met, warnings about saturation, and the
// profile summary.
func Render(w io.Writer, rep *Report, env Environment) {
	p := rep.Plan
	fmt.Fprintf(w, "# Causeway benchmark\n\n")
	fmt.Fprintf(w, "- date: %s\n- machine: %s\n- commit: %s\n- load average at start: %s\n", env.Date, env.Machine, env.Commit, env.LoadAvg)
	if len(env.Tools) > 0 {
		fmt.Fprintf(w, "- tools: %s\n", strings.Join(env.Tools, ", "))
	}
	fmt.Fprintf(w, "- pinning: systems under test on CPU %s, load generators and the upstream on CPU %s (taskset)", p.ProxyCores, p.LoadCores)
	if env.Nice != "" {
		fmt.Fprintf(w, "; niceness %s", env.Nice)
	}
	fmt.Fprintln(w)
	if p.Rounds > 1 {
		fmt.Fprintf(w, "- rounds: %d, systems taking turns in each; every row is the round with the median rate (median p99 for the fixed-rate load)\n", p.Rounds)
	}
	fmt.Fprintf(w, "- upstream: one Go server (HTTP/1.1 + h2c) answering a %d-byte body; the same for every system\n", len(Body))
	fmt.Fprintf(w, "- ratio columns: value ÷ the best of HAProxy and NGINX (rate: higher is better; latency: lower is better)\n")
	fmt.Fprintf(w, "- ok req/s: successful (2xx) answers per second; errors: non-2xx answers and socket errors\n")
	fmt.Fprintf(w, "- proxy core / load core: CPU time ÷ wall time of the system / of the generator + upstream\n")
	if BreakerWorkaround > 0 {
		fmt.Fprintf(w, "- Causeway's breaker threshold is set to %d consecutive failures instead of the proxy's default (--causeway-breaker; see harness.BreakerWorkaround)\n", BreakerWorkaround)
	}
	fmt.Fprintln(w)

	var warnings []string
	for _, load := range p.Loads {
		b := bestPeer(rep.Results, load)
		fmt.Fprintf(w, "## %s\n\n", loadTitle(p, load))
		if load == LoadTCP {
			fmt.Fprintf(w, "| system | MB/s | proxy CPU s | proxy core | load core | peak RSS | MB per CPU s | MB/s ÷ best peer | MB per CPU s ÷ best |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		} else {
			fmt.Fprintf(w, "| system | ok req/s | p50 | p99 | errors | proxy CPU s | proxy core | load core | peak RSS | req per CPU s | rps ÷ best peer | req per CPU s ÷ best | p50 ÷ best | p99 ÷ best |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		}
		for _, sys := range p.Systems {
			r, ok := find(rep.Results, load, sys)
			if !ok {
				why := rep.Skipped[sys]
				if why == "" {
					why = "not run"
				}
				r = Result{System: sys, NA: why}
			}
			if r.NA != "" {
				cols := 13
				if load == LoadTCP {
					cols = 8
				}
				fmt.Fprintf(w, "| %s | n/a: %s%s |\n", sys, escape(r.NA), strings.Repeat(" | ", cols-1))
				continue
			}
			proxyCPU, proxyCore, peak := fmt.Sprintf("%.2f", r.ProxyCPU.Seconds()), pct(r.ProxyCPU, r.Wall), mb(r.PeakRSS)
			eff, effRatio := fmt.Sprintf("%.0f", r.PerCPUSecond()), ratio(Ratio(r.PerCPUSecond(), b.perCPU))
			if sys == SysNone {
				proxyCPU, proxyCore, peak, eff, effRatio = "-", "-", "-", "-", "-"
			}
			loadCore := pct(r.LoadCPU, r.Wall)
			if load == LoadTCP {
				fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", sys, r.Rate, proxyCPU, proxyCore, loadCore, peak, eff, ratio(Ratio(r.Rate, b.rate)), effRatio)
			} else {
				fmt.Fprintf(w, "| %s | %.0f | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", sys, r.Rate, ms(r.P50), ms(r.P99), r.Errors,
					proxyCPU, proxyCore, loadCore, peak, eff, ratio(Ratio(r.Rate, b.rate)), effRatio,
					ratio(Ratio(float64(r.P50), float64(b.p50))), ratio(Ratio(float64(r.P99), float64(b.p99))))
			}
			warnings = append(warnings, saturation(r)...)
		}
		fmt.Fprintln(w)
	}

	renderCrossing(w, rep)

	fmt.Fprintf(w, "## Idle memory (a second after start, all of the system's processes)\n\n")
	fmt.Fprintf(w, "RSS counts the executable's pages the kernel mapped in as well as heap and stacks; the anonymous part is heap and stacks alone.\n\n")
	fmt.Fprintf(w, "| system | idle RSS | of which anonymous |\n|---|---:|---:|\n")
	for _, sys := range p.Systems {
		if v, ok := rep.IdleRSS[sys]; ok {
			fmt.Fprintf(w, "| %s | %s | %s |\n", sys, mb(v), mb(rep.IdleAnon[sys]))
		}
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "## Targets (issue 3)\n\n")
	for _, line := range Targets(rep) {
		fmt.Fprintf(w, "- %s\n", line)
	}
	fmt.Fprintln(w)
	if len(warnings) > 0 {
		fmt.Fprintf(w, "## Caveats\n\n")
		for _, line := range warnings {
			fmt.Fprintf(w, "- %s\n", line)
		}
		fmt.Fprintln(w)
	}
	if len(rep.Profile) > 0 {
		fmt.Fprintf(w, "## CPU profile: causeway-1hop under the HTTP/1.1 max-rps load\n\n```\n%s\n```\n", strings.Join(rep.Profile, "\n"))
	}
}

// Targets says, line by line, whether Causeway one hop met issue 3's
// targets. It reports; it never fails the run.
func Targets(rep *Report) []string {
	var out []string
	b := bestPeer(rep.Results, LoadH1Max)
	r, ok := find(rep.Results, LoadH1Max, SysCauseway1)
	switch {
	case !ok || r.NA != "":
		out = append(out, fmt.Sprintf("HTTP/1.1 max rps ≥ %.2f× best peer: not measured", TargetRPSRatio))
	case b.rate == 0:
		out = append(out, fmt.Sprintf("HTTP/1.1 max rps ≥ %.2f× best peer: no peer measured", TargetRPSRatio))
	default:
		raw := Ratio(r.Rate, b.rate)
		eff := Ratio(r.PerCPUSecond(), b.perCPU)
		rawLine := fmt.Sprintf("%.2f× (%.0f vs %s %.0f req/s, proxy cores %s and %s busy)", raw, r.Rate, b.rateBy, b.rate, pct(r.ProxyCPU, r.Wall), pct(b.rateCore, b.rateWall))
		effLine := fmt.Sprintf("%.2f× (%.0f vs %s %.0f req per CPU s)", eff, r.PerCPUSecond(), b.effBy, b.perCPU)
		// On one dedicated core the max rate is the work per CPU second;
		// the raw ratio means that only when both proxies had their core.
		saturated := busy(r.ProxyCPU, r.Wall) && busy(b.rateCore, b.rateWall)
		verdict, basis := raw, "raw rate (both proxy cores saturated)"
		if !saturated {
			verdict, basis = eff, "per CPU second (a proxy did not have exactly one busy core, so the raw rates measure the machine's contention, not one core)"
		}
		out = append(out, fmt.Sprintf("HTTP/1.1 max rps ≥ %.2f× best peer on one core: raw %s; per CPU second %s — judged on the %s: %s",
			TargetRPSRatio, rawLine, effLine, basis, metStr(verdict >= TargetRPSRatio)))
	}
	if v, ok := rep.IdleRSS[SysCauseway1]; ok {
		out = append(out, fmt.Sprintf("idle RSS ≤ %s: %s — %s", mb(TargetIdleRSS), mb(v), metStr(v <= TargetIdleRSS)))
	} else {
		out = append(out, fmt.Sprintf("idle RSS ≤ %s: not measured", mb(TargetIdleRSS)))
	}
	return out
}

// busy reports whether the process had one core, and only one: cpu within
// 90-110 % of wall. Above that it was not held to one core (unpinned, or
// two sidecars), and its raw rate is not a one-core figure either.
func busy(cpu, wall time.Duration) bool {
	f := cpu.Seconds() / wall.Seconds()
	return wall > 0 && f >= 0.9 && f <= 1.1
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// saturation flags figures bounded by something other than the proxy: a
// busy load core caps every system alike and squeezes the ratios towards 1.
func saturation(r Result) []string {
	var out []string
	if r.Wall > 0 && r.LoadCPU.Seconds()/r.Wall.Seconds() >= 0.9 && r.Load != LoadH1Fixed {
		out = append(out, fmt.Sprintf("%s %s: the load core was %s busy; the system may be faster than shown", r.System, r.Load, pct(r.LoadCPU, r.Wall)))
	}
	if r.Errors > 0 {
		out = append(out, fmt.Sprintf("%s %s: %d errors", r.System, r.Load, r.Errors))
	}
	return out
}

func find(results []Result, load, sys string) (Result, bool) {
	for _, r := range results {
		if r.Load == load && r.System == sys {
			return r, true
		}
	}
	return Result{}, false
}

func escape(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
