package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/causeway-mesh/causeway/internal/loopback"
)

// Load names, in report order.
const (
	LoadH1Max   = "h1-max"
	LoadH1Fixed = "h1-fixed"
	LoadH2      = "h2"
	LoadGRPC    = "grpc"
	LoadTCP     = "tcp"
)

// AllLoads is every load in report order.
var AllLoads = []string{LoadH1Max, LoadH1Fixed, LoadH2, LoadGRPC, LoadTCP}

// grpcHeaders make h2load's POSTs look like gRPC unary calls to a proxy:
// the content type gRPC uses and "te: trailers", which a proxy must pass.
var grpcHeaders = []string{"-H", "content-type: application/grpc", "-H", "te: trailers"}

// GRPCMessage is the body of each call of the grpc load: one gRPC
// length-prefixed message (flag 0, 4-byte big-endian length) holding a
// protobuf string field 1, "hello", as an Echo request would.
var GRPCMessage = []byte{0, 0, 0, 0, 7, 0x0a, 5, 'h', 'e', 'l', 'l', 'o'}

// h2loadArgs are the load tool's flags for LoadH2 or LoadGRPC beyond the
// connection and stream counts.
func h2loadArgs(p Plan, load string) ([]string, error) {
	if load != LoadGRPC {
		return nil, nil
	}
	path := filepath.Join(p.Dir, "grpc-message.bin")
	if err := os.WriteFile(path, GRPCMessage, 0o644); err != nil {
		return nil, err
	}
	return append([]string{"-d", path}, grpcHeaders...), nil
}

// Plan is one benchmark run.
type Plan struct {
	Systems, Loads  []string
	Duration        time.Duration // per load and system
	Conns           int           // wrk connections (HTTP/1.1 max rps)
	Rate, RateConns int           // fixed-rate requests/s and connections
	H2Clients       int           // h2load -c
	H2Streams       int           // h2load -m (concurrent streams per connection)
	BulkBytes       int64         // bytes per TCP transfer
	BulkReps        int           // transfers per system; the median is reported
	ProxyCores      string        // taskset CPU list for the systems under test
	LoadCores       string        // taskset CPU list for generators and upstream
	Causeway        string        // path of the causeway binary the sidecars run from
	CausewayCLI     string        // the full causeway binary (identity serve, gateway) for the cross-cluster systems
	Self            string        // path of the harness binary (runs the upstream)
	Dir             string        // scratch directory for configs, logs, profiles
	Rounds          int           // rounds over all systems; each figure is the median round
	ProfileOut      string        // where to save a CPU profile of causeway-1hop under h1-max; "" = none
	Progress        io.Writer
}

// Result is one load on one system.
type Result struct {
	Load, System string
	NA           string  // why there is no figure; empty when measured
	Rate         float64 // requests/s, or MB/s for LoadTCP
	P50, P99     time.Duration
	Requests     int64
	Errors       int64
	ProxyCPU     time.Duration // CPU time of the system's processes during the load
	LoadCPU      time.Duration // CPU time of the generator and the upstream
	Wall         time.Duration
	PeakRSS      int64   // VmHWM during the load, summed over the system's processes
	Work         float64 // successful requests, or MB (10^6 bytes) moved for LoadTCP
	Rounds       int     // how many rounds measured this pair (the row is their median)
}

// PerCPUSecond is work done per CPU second of the system under test. On a
// shared machine a proxy rarely gets its whole core, and the share it gets
// depends on its thread count as much as on its speed; work per CPU second
// does not, and on a dedicated core (proxy core ~100%) it is the max rate.
func (r Result) PerCPUSecond() float64 {
	if r.ProxyCPU <= 0 || r.Work <= 0 {
		return 0
	}
	return r.Work / r.ProxyCPU.Seconds()
}

// Report is what Run measured.
type Report struct {
	Plan     Plan
	Started  time.Time
	Results  []Result
	IdleRSS  map[string]int64  // system -> bytes
	IdleAnon map[string]int64  // system -> anonymous bytes of IdleRSS
	Skipped  map[string]string // system -> why it did not run
	Profile  []string          // pprof -top lines for causeway-1hop, or why not
}

func (p Plan) logf(format string, args ...any) {
	if p.Progress != nil {
		fmt.Fprintf(p.Progress, "bench: "+format+"\n", args...)
	}
}

// Run starts the upstream, then each system in turn, runs every load on it
// and stops it before the next, so systems never compete with each other.
func Run(ctx context.Context, p Plan) (*Report, error) {
	rep := &Report{Plan: p, Started: time.Now().UTC(), IdleRSS: map[string]int64{}, IdleAnon: map[string]int64{}, Skipped: map[string]string{}}
	ports, err := loopback.FreePorts(2)
	if err != nil {
		return nil, err
	}
	up := Ports{UpHTTP: ports[0], UpTCP: ports[1]}
	upstream, err := StartPinned(p.Dir, "upstream", p.LoadCores, p.Self, "upstream",
		"--http", fmt.Sprintf("127.0.0.1:%d", up.UpHTTP), "--tcp", fmt.Sprintf("127.0.0.1:%d", up.UpTCP))
	if err != nil {
		return nil, err
	}
	defer upstream.Stop(5 * time.Second)
	if err := WaitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/", up.UpHTTP), 15*time.Second, upstream); err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}

	// The two clusters' Workload APIs live as long as the run, like the
	// upstream: only the cross-cluster systems use them.
	var ids *Identities
	if slices.ContainsFunc(p.Systems, IsCrossCluster) {
		p.logf("identity: starting west's and east's Workload APIs (two CAs, federated bundles)")
		ids, err = StartIdentities(ctx, p.Dir, p.LoadCores, p.CausewayCLI, p.Causeway)
		if err != nil {
			p.logf("identity: %v; the cross-cluster systems are skipped", err)
			for _, name := range p.Systems {
				if IsCrossCluster(name) {
					rep.Skipped[name] = firstLine(err.Error())
				}
			}
		} else {
			defer ids.Stop()
		}
	}

	// Systems take turns within each round, so a burst of background load
	// on the shared machine hits every system rather than one.
	var all []Result
	idle := map[string][]int64{}
	idleAnon := map[string][]int64{}
	rounds := max(1, p.Rounds)
	for round := 1; round <= rounds; round++ {
		for _, name := range p.Systems {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			if IsCrossCluster(name) && ids == nil {
				continue
			}
			p.logf("%s: starting (round %d of %d)", name, round, rounds)
			sys, err := StartSystemWith(ctx, name, p.Dir, p.ProxyCores, p.Causeway, ids, up, max(p.Conns, p.RateConns, p.H2Clients))
			if err != nil {
				p.logf("%s: skipped: %v", name, err)
				rep.Skipped[name] = firstLine(err.Error())
				continue
			}
			if name != SysNone {
				idle[name] = append(idle[name], sys.IdleRSS)
				idleAnon[name] = append(idleAnon[name], sys.IdleAnon)
				p.logf("%s: up, idle RSS %s (anonymous %s)", name, mb(sys.IdleRSS), mb(sys.IdleAnon))
			}
			for _, load := range p.Loads {
				res := runLoad(ctx, p, rep, sys, upstream, load)
				if res.NA != "" {
					p.logf("%s %s: n/a: %s", name, load, res.NA)
				} else {
					p.logf("%s %s: %.0f %s, p50 %v, p99 %v, errors %d", name, load, res.Rate, unit(load), res.P50, res.P99, res.Errors)
				}
				all = append(all, res)
			}
			sys.Stop()
		}
	}
	rep.Results = MedianRounds(all)
	for name, v := range idle {
		rep.IdleRSS[name] = median(v)
		rep.IdleAnon[name] = median(idleAnon[name])
	}
	return rep, ctx.Err()
}

// MedianRounds keeps one result per (load, system), in first-seen order:
// of the measured rounds, the one with the median rate (the lower middle of
// an even count), so a row's figures all come from one real run; a pair
// with no measured round keeps its first n/a. The fixed-rate load asks every
// system for the same rate, so there the median is taken by p99 instead
// (the middle p99, not the lowest: a stalled round is dropped, a lucky one
// is not picked either).
func MedianRounds(all []Result) []Result {
	type key struct{ load, system string }
	var order []key
	groups := map[key][]Result{}
	for _, r := range all {
		k := key{r.Load, r.System}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]Result, 0, len(order))
	for _, k := range order {
		var ok []Result
		for _, r := range groups[k] {
			if r.NA == "" {
				ok = append(ok, r)
			}
		}
		if len(ok) == 0 {
			out = append(out, groups[k][0])
			continue
		}
		by := func(r Result) float64 { return r.Rate }
		if k.load == LoadH1Fixed {
			// Higher p99 sorts first so that, as with rates, the lower
			// middle of an even count is the worse of the two.
			by = func(r Result) float64 { return -float64(r.P99) }
		}
		slices.SortStableFunc(ok, func(a, b Result) int { return cmpFloat(by(a), by(b)) })
		m := ok[(len(ok)-1)/2]
		m.Rounds = len(ok)
		out = append(out, m)
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func median(v []int64) int64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func unit(load string) string {
	if load == LoadTCP {
		return "MB/s"
	}
	return "req/s"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// runLoad measures one load on one system: the system's CPU and peak memory
// and the load side's CPU around the load alone.
func runLoad(ctx context.Context, p Plan, rep *Report, sys *Running, upstream *Child, load string) Result {
	res := Result{Load: load, System: sys.Name}
	if load == LoadTCP && sys.TCP == "" {
		res.NA = sys.TCPNA
		return res
	}
	// Warm-up: fill the systems' connection pools; not measured.
	if err := warmUp(ctx, p, sys, load); err != nil {
		res.NA = "warm-up failed: " + firstLine(err.Error())
		return res
	}
	pids := sys.PIDs()
	for _, pid := range pids {
		_ = ResetPeak(pid)
	}
	before, err1 := Sample(pids)
	upBefore, err2 := CPUTime(upstream.PID())
	selfBefore, err3 := CPUTime(os.Getpid())
	if err := errors.Join(err1, err2, err3); err != nil {
		res.NA = "reading /proc: " + err.Error()
		return res
	}

	var stopProfile func() []string
	if p.ProfileOut != "" && sys.Name == SysCauseway1 && load == LoadH1Max && rep.Profile == nil {
		stopProfile = startProfile(ctx, p, sys)
	}
	start := time.Now()
	var gen time.Duration // CPU of a generator run as a child process
	var err error
	switch load {
	case LoadH1Max:
		gen, err = runWrk(ctx, p, sys, &res)
	case LoadH1Fixed:
		err = runFixed(ctx, p, sys, &res)
	case LoadH2, LoadGRPC:
		gen, err = runH2load(ctx, p, sys, load, &res)
	case LoadTCP:
		err = runBulk(p, sys, &res)
	default:
		err = fmt.Errorf("unknown load %q (want one of %v)", load, AllLoads)
	}
	res.Wall = time.Since(start)
	if stopProfile != nil {
		rep.Profile = stopProfile()
	}
	if err != nil {
		res.NA = firstLine(err.Error())
		return res
	}
	after, err1 := Sample(pids)
	upAfter, err2 := CPUTime(upstream.PID())
	selfAfter, err3 := CPUTime(os.Getpid())
	if err := errors.Join(err1, err2, err3); err != nil {
		res.NA = "reading /proc: " + err.Error()
		return res
	}
	res.ProxyCPU = after.CPU - before.CPU
	res.PeakRSS = after.Peak
	res.LoadCPU = gen + (upAfter - upBefore) + (selfAfter - selfBefore)
	return res
}

func warmUp(ctx context.Context, p Plan, sys *Running, load string) error {
	switch load {
	case LoadH1Max, LoadH1Fixed:
		_, err := pinnedOutput(ctx, p.LoadCores, "wrk", "-t1", fmt.Sprintf("-c%d", p.Conns), "-d1s", "http://"+sys.H1+"/")
		return err
	case LoadH2, LoadGRPC:
		extra, err := h2loadArgs(p, load)
		if err != nil {
			return err
		}
		args := append([]string{"h2load", "-t1", fmt.Sprintf("-c%d", p.H2Clients), fmt.Sprintf("-m%d", p.H2Streams), "-n", "2000"}, extra...)
		_, err = pinnedOutput(ctx, p.LoadCores, append(args, "http://"+sys.H2+"/")...)
		return err
	case LoadTCP:
		_, err := Bulk(sys.TCP, 16<<20, time.Minute)
		return err
	}
	return nil
}

// pinnedCmd runs a load tool pinned to cores and returns its stdout and
// its CPU time (from the kernel's rusage of the exited child).
func pinnedCmd(ctx context.Context, cores string, argv ...string) (string, time.Duration, error) {
	if cores != "" {
		argv = append([]string{"taskset", "-c", cores}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var cpu time.Duration
	if cmd.ProcessState != nil {
		cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return stdout.String(), cpu, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, firstLine(stderr.String()+stdout.String()))
	}
	return stdout.String(), cpu, nil
}

func pinnedOutput(ctx context.Context, cores string, argv ...string) (string, error) {
	out, _, err := pinnedCmd(ctx, cores, argv...)
	return out, err
}

func seconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second)))
}

func runWrk(ctx context.Context, p Plan, sys *Running, res *Result) (time.Duration, error) {
	out, cpu, err := pinnedCmd(ctx, p.LoadCores, "wrk", "-t1", fmt.Sprintf("-c%d", p.Conns), "-d"+seconds(p.Duration)+"s", "--latency", "http://"+sys.H1+"/")
	if err != nil {
		return cpu, err
	}
	if err := os.WriteFile(filepath.Join(p.Dir, sys.Name, "wrk.txt"), []byte(out), 0o644); err != nil {
		return cpu, err
	}
	r, err := ParseWrk(out)
	if err != nil {
		return cpu, err
	}
	res.Rate, res.P50, res.P99, res.Requests, res.Errors = okRate(r), r.P50, r.P99, r.Requests, r.Errors
	res.Work = float64(max(0, r.Requests-r.Errors))
	return cpu, nil
}

// okRate is the rate of successful answers: a proxy that answers 503 fast
// must not look fast. wrk counts non-2xx answers in its requests; h2load
// counts only succeeded ones but may report failed ones beside them.
func okRate(r LoadResult) float64 {
	total := r.Requests
	if total <= 0 {
		return 0
	}
	ok := max(0, total-r.Errors)
	return r.RPS * float64(ok) / float64(total)
}

func runFixed(ctx context.Context, p Plan, sys *Running, res *Result) error {
	r, err := FixedRate(ctx, "http://"+sys.H1+"/", p.Rate, p.Duration, p.RateConns)
	if err != nil {
		return err
	}
	res.Requests = int64(len(r.Latencies)) - int64(r.Errors)
	res.Errors = int64(r.Errors)
	res.Rate = float64(res.Requests) / r.Elapsed.Seconds()
	res.Work = float64(res.Requests)
	res.P50, res.P99 = Percentile(r.Latencies, 0.50), Percentile(r.Latencies, 0.99)
	return nil
}

func runH2load(ctx context.Context, p Plan, sys *Running, load string, res *Result) (time.Duration, error) {
	extra, err := h2loadArgs(p, load)
	if err != nil {
		return 0, err
	}
	logPath := filepath.Join(p.Dir, sys.Name, load+".log")
	args := append([]string{"h2load", "-t1", fmt.Sprintf("-c%d", p.H2Clients), fmt.Sprintf("-m%d", p.H2Streams),
		"-D", seconds(p.Duration), "--log-file=" + logPath}, extra...)
	out, cpu, err := pinnedCmd(ctx, p.LoadCores, append(args, "http://"+sys.H2+"/")...)
	if err != nil {
		return cpu, err
	}
	if err := os.WriteFile(filepath.Join(p.Dir, sys.Name, load+".txt"), []byte(out), 0o644); err != nil {
		return cpu, err
	}
	r, err := ParseH2load(out)
	if err != nil {
		return cpu, err
	}
	f, err := os.Open(logPath)
	if err != nil {
		return cpu, err
	}
	defer f.Close()
	lat, _, err := ParseH2loadLog(f)
	if err != nil {
		return cpu, err
	}
	res.Rate, res.Requests, res.Errors = okRate(r), r.Requests, r.Errors
	res.Work = float64(max(0, r.Requests-r.Errors))
	res.P50, res.P99 = Percentile(lat, 0.50), Percentile(lat, 0.99)
	return cpu, nil
}

func runBulk(p Plan, sys *Running, res *Result) error {
	var rates []float64
	for range max(1, p.BulkReps) {
		r, err := Bulk(sys.TCP, p.BulkBytes, 5*time.Minute)
		if err != nil {
			return err
		}
		rates = append(rates, r.MBps())
		res.Requests++
		res.Work += float64(r.Bytes) / 1e6
	}
	slices.Sort(rates)
	res.Rate = rates[len(rates)/2]
	return nil
}
