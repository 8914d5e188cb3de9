// Command benchreport runs Causeway's side-by-side benchmark (issue 3): the
// same loads on loopback with no proxy, Causeway (one and two hops), HAProxy
// and NGINX, printed as a Markdown report with ratios to the best peer.
// bench/run.sh (`make bench`) installs the tools and calls it.
//
//	benchreport [flags]                      run the benchmark
//	benchreport upstream --http A --tcp B    the shared upstream (run by the harness)
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/causeway-mesh/causeway/bench/harness"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "upstream" {
		os.Exit(upstream(os.Args[2:]))
	}
	os.Exit(bench(os.Args[1:]))
}

func upstream(args []string) int {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP/1.1 + h2c listen address")
	tcpAddr := fs.String("tcp", "127.0.0.1:0", "TCP sink listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		return 1
	}
	tl, err := net.Listen("tcp", *tcpAddr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := harness.ServeUpstream(ctx, hl, tl); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		return 1
	}
	return 0
}

func bench(args []string) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	var (
		p        harness.Plan
		systems  = fs.String("systems", strings.Join(harness.AllSystems, ","), "systems to run, comma-separated")
		loads    = fs.String("loads", strings.Join(harness.AllLoads, ","), "loads to run, comma-separated")
		out      = fs.String("out", "bench/results/latest.md", "also write the report here (\"\" = stdout only)")
		bulkMiB  = fs.Int64("bulk-mib", 1024, "MiB per TCP bulk transfer")
		keep     = fs.Bool("keep", false, "keep the scratch directory (configs, logs, raw tool output)")
		profile  = fs.Bool("profile", true, "take a CPU profile of causeway-1hop under the HTTP/1.1 max-rps load (admin /debug/pprof)")
		causeway = fs.String("causeway", "bin/causeway", "path of the causeway binary the sidecars run from")
		cli      = fs.String("causeway-cli", "bin/causeway", "path of the full causeway binary (identity serve and gateway, for the cross-cluster systems)")
	)
	fs.DurationVar(&p.Duration, "duration", 10*time.Second, "length of each load on each system")
	fs.IntVar(&p.Conns, "conns", 50, "wrk connections for HTTP/1.1 max rps")
	fs.IntVar(&p.Rate, "rate", 4000, "requests/s of the fixed-rate HTTP/1.1 load")
	fs.IntVar(&p.RateConns, "rate-conns", 16, "connections of the fixed-rate load")
	fs.IntVar(&p.H2Clients, "h2-clients", 10, "h2load connections")
	fs.IntVar(&p.H2Streams, "h2-streams", 10, "h2load concurrent streams per connection")
	fs.IntVar(&p.Rounds, "rounds", 1, "rounds over all systems (systems take turns; the median round is reported)")
	fs.IntVar(&harness.BreakerWorkaround, "causeway-breaker", harness.BreakerWorkaround, "consecutive failures that open Causeway's circuit in the bench config (0 = the proxy's default; see harness.BreakerWorkaround)")
	fs.IntVar(&p.BulkReps, "bulk-reps", 3, "TCP transfers per system (median reported)")
	fs.StringVar(&p.ProxyCores, "proxy-cpu", "1", "taskset CPU list for the systems under test (\"one core\" is issue 3's condition)")
	fs.StringVar(&p.LoadCores, "load-cpu", "0", "taskset CPU list for the load generators and the upstream")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	p.Systems, p.Loads = split(*systems), split(*loads)
	for _, s := range p.Systems {
		if !contains(harness.AllSystems, s) {
			fmt.Fprintf(os.Stderr, "benchreport: --systems: unknown %q (want %v)\n", s, harness.AllSystems)
			return 2
		}
	}
	for _, l := range p.Loads {
		if !contains(harness.AllLoads, l) {
			fmt.Fprintf(os.Stderr, "benchreport: --loads: unknown %q (want %v)\n", l, harness.AllLoads)
			return 2
		}
	}
	p.BulkBytes = *bulkMiB << 20
	var err error
	if p.Self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	if p.Causeway, err = filepath.Abs(*causeway); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	if p.CausewayCLI, err = filepath.Abs(*cli); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	if p.Dir, err = os.MkdirTemp("", "causeway-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "bench: scratch directory", p.Dir)
	} else {
		defer os.RemoveAll(p.Dir)
	}
	if *profile {
		p.ProfileOut = filepath.Join(p.Dir, "causeway-1hop.cpu.pprof")
		if *out != "" {
			p.ProfileOut = filepath.Join(filepath.Dir(*out), "causeway-1hop.cpu.pprof")
		}
	}
	p.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := environment()
	rep, err := harness.Run(ctx, p)
	if rep == nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	var buf bytes.Buffer
	harness.Render(&buf, rep, env)
	os.Stdout.Write(buf.Bytes())
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
			err = os.WriteFile(*out, buf.Bytes(), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport: write", *out+":", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "bench: report written to", *out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// environment notes where the figures come from: they are only comparable
// on one machine, in one run.
func environment() harness.Environment {
	env := harness.Environment{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	// runtime.NumCPU counts only the CPUs this process may use (the harness
	// is pinned); /proc/cpuinfo lists the machine's.
	ncpu := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "processor") {
				ncpu++
			}
		}
	}
	env.Machine = fmt.Sprintf("%s, %d CPUs%s, %s", cpu, ncpu, kernel, runtime.Version())
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		env.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	env.Commit = "unknown"
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		env.Commit = strings.TrimSpace(string(b))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			env.Commit += " (with uncommitted changes)"
		}
	}
	// Children inherit the harness's niceness (run.sh's BENCH_NICE).
	if prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0); err == nil {
		// The raw syscall returns 20 - nice on Linux.
		env.Nice = fmt.Sprint(20 - prio)
	}
	for _, t := range [][]string{{"haproxy", "-v"}, {"nginx", "-v"}, {"wrk", "-v"}, {"h2load", "--version"}} {
		b, _ := exec.Command(t[0], t[1:]...).CombinedOutput()
		if line := firstLine(string(b)); line != "" {
			env.Tools = append(env.Tools, line)
		}
	}
	return env
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(s)
}
