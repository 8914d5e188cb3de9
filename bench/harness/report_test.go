package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestTargets(t *testing.T) {
	t.Parallel()
	sec := time.Second
	// h1 builds an HTTP/1.1 max-rps result over 10 s: rate, CPU seconds used.
	h1 := func(sys string, rate float64, cpu time.Duration) Result {
		return Result{Load: LoadH1Max, System: sys, Rate: rate, Work: rate * 10, ProxyCPU: cpu, Wall: 10 * sec}
	}
	peers := []Result{
		h1(SysHAProxy, 40000, 10*sec),
		h1(SysNginx, 50000, 10*sec),
		// Not a peer: never the baseline even when fastest.
		{Load: LoadH1Max, System: SysNone, Rate: 90000, Wall: 10 * sec},
	}
	with := func(r Result) []Result { return append(peers[:3:3], r) }
	tests := []struct {
		name    string
		results []Result
		idle    map[string]int64
		want    []string
	}{
		{name: "saturated cores: judged on the raw rate, met", results: with(h1(SysCauseway1, 36000, 10*sec)),
			idle: map[string]int64{SysCauseway1: 12_000_000},
			want: []string{"raw 0.72× (36000 vs nginx 50000 req/s, proxy cores 100% and 100% busy)", "judged on the raw rate (both proxy cores saturated): met", "12.0 MB — met"}},
		{name: "saturated cores, rate short; memory over", results: with(h1(SysCauseway1, 30000, 10*sec)),
			idle: map[string]int64{SysCauseway1: 15_000_001},
			want: []string{"raw 0.60×", "judged on the raw rate (both proxy cores saturated): NOT met", "15.0 MB — NOT met"}},
		{name: "contended core: a good raw ratio does not count", results: with(h1(SysCauseway1, 45000, 4*sec)),
			// 45000*10 requests in 4 CPU s = 112500/CPU s; nginx 50000/CPU s.
			want: []string{"raw 0.90×", "per CPU second 2.25× (112500 vs nginx 50000 req per CPU s)", "judged on the per CPU second", "): met"}},
		{name: "contended core, costly proxy: NOT met", results: with(h1(SysCauseway1, 20000, 8*sec)),
			want: []string{"raw 0.40×", "per CPU second 0.50×", "not have exactly one busy core", "): NOT met"}},
		{name: "more than one core is not one core", results: with(h1(SysCauseway1, 45000, 20*sec)),
			want: []string{"raw 0.90×", "proxy cores 200% and 100%", "per CPU second 0.45×", "judged on the per CPU second", "): NOT met"}},
		{name: "causeway failed to run", results: with(Result{Load: LoadH1Max, System: SysCauseway1, NA: "no proxy command"}),
			want: []string{"best peer: not measured", "15.0 MB: not measured"}},
		{name: "no peer", results: []Result{h1(SysCauseway1, 1, sec)},
			want: []string{"no peer measured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := strings.Join(Targets(&Report{Results: tt.results, IdleRSS: tt.idle}), "\n")
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Targets =\n%s\nwant a line containing %q", got, w)
				}
			}
		})
	}
}

// TestRender checks the ratio columns against the best peer per metric and
// that every system gets a row, measured or not.
func TestRender(t *testing.T) {
	t.Parallel()
	rep := &Report{
		Plan: Plan{Systems: AllSystems, Loads: []string{LoadH1Max, LoadTCP}, Duration: 10 * time.Second, Conns: 50, BulkBytes: 1 << 30, BulkReps: 3, ProxyCores: "1", LoadCores: "0"},
		Results: []Result{
			{Load: LoadH1Max, System: SysHAProxy, Rate: 40000, Work: 400000, P50: time.Millisecond, P99: 4 * time.Millisecond, Wall: 10 * time.Second, ProxyCPU: 10 * time.Second, LoadCPU: 5 * time.Second},
			{Load: LoadH1Max, System: SysNginx, Rate: 50000, Work: 500000, P50: 2 * time.Millisecond, P99: 2 * time.Millisecond, Wall: 10 * time.Second, ProxyCPU: 5 * time.Second},
			{Load: LoadH1Max, System: SysCauseway1, Rate: 25000, Work: 250000, P50: 3 * time.Millisecond, P99: 8 * time.Millisecond, Wall: 10 * time.Second, ProxyCPU: 10 * time.Second, LoadCPU: 9500 * time.Millisecond},
			{Load: LoadTCP, System: SysNginx, NA: "no stream module"},
			{Load: LoadTCP, System: SysHAProxy, Rate: 2000, Work: 2000, Wall: time.Second, ProxyCPU: time.Second},
			{Load: LoadTCP, System: SysCauseway1, Rate: 3000, Work: 3000, Wall: time.Second, ProxyCPU: time.Second / 2},
		},
		IdleRSS:  map[string]int64{SysCauseway1: 9_000_000},
		IdleAnon: map[string]int64{SysCauseway1: 2_000_000},
		Skipped:  map[string]string{SysCauseway2: "causeway-2hop: exited"},
	}
	var buf bytes.Buffer
	Render(&buf, rep, Environment{Date: "d", Machine: "m", Commit: "c"})
	out := buf.String()
	tests := []struct {
		name, want string
	}{
		// nginx: 500000 requests in 5 CPU s = 100000 per CPU s, the best.
		{"causeway rps ÷ best rate, per CPU s ÷ best, p50 ÷ best p50, p99 ÷ best p99", "| causeway-1hop | 25000 | 3.00 ms | 8.00 ms | 0 | 10.00 | 100% | 95% | 0.0 MB | 25000 | 0.50× | 0.25× | 3.00× | 4.00× |"},
		{"haproxy vs nginx", "| haproxy | 40000 | 1.00 ms | 4.00 ms | 0 | 10.00 | 100% | 50% | 0.0 MB | 40000 | 0.80× | 0.40× | 1.00× | 2.00× |"},
		{"skipped system keeps its row", "| causeway-2hop | n/a: causeway-2hop: exited |"},
		{"tcp ratio to the only measured peer", "| causeway-1hop | 3000 | 0.50 | 50% | 0% | 0.0 MB | 6000 | 1.50× | 3.00× |"},
		{"tcp n/a", "| nginx | n/a: no stream module |"},
		{"saturated load core is a caveat", "causeway-1hop h1-max: the load core was 95% busy"},
		{"target line", "per CPU second 0.25× (25000 vs nginx 100000 req per CPU s) — judged on the per CPU second"},
		{"idle memory", "| causeway-1hop | 9.0 MB | 2.0 MB |"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(out, tt.want) {
				t.Errorf("report lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

func TestOKRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   LoadResult
		want float64
	}{
		{"no errors", LoadResult{Requests: 100, RPS: 50}, 50},
		{"half failed", LoadResult{Requests: 100, RPS: 50, Errors: 50}, 25},
		{"all failed (fast 503s are not throughput)", LoadResult{Requests: 100, RPS: 5000, Errors: 100}, 0},
		{"socket errors beyond the count", LoadResult{Requests: 10, RPS: 10, Errors: 500}, 0},
		{"nothing done", LoadResult{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := okRate(tt.in); got != tt.want {
				t.Errorf("okRate(%+v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMedianRounds(t *testing.T) {
	t.Parallel()
	r := func(load, sys string, rate float64, na string) Result {
		return Result{Load: load, System: sys, Rate: rate, NA: na, P99: time.Duration(rate)}
	}
	tests := []struct {
		name string
		in   []Result
		want []Result // Rounds is checked too
	}{
		{name: "one round passes through",
			in:   []Result{r(LoadH1Max, SysNginx, 10, "")},
			want: []Result{{Load: LoadH1Max, System: SysNginx, Rate: 10, P99: 10, Rounds: 1}}},
		{name: "odd count: the middle rate, with its own latencies",
			in:   []Result{r(LoadH1Max, SysNginx, 30, ""), r(LoadH1Max, SysNginx, 10, ""), r(LoadH1Max, SysNginx, 20, "")},
			want: []Result{{Load: LoadH1Max, System: SysNginx, Rate: 20, P99: 20, Rounds: 3}}},
		{name: "even count: the lower middle",
			in:   []Result{r(LoadTCP, SysHAProxy, 4, ""), r(LoadTCP, SysHAProxy, 1, ""), r(LoadTCP, SysHAProxy, 3, ""), r(LoadTCP, SysHAProxy, 2, "")},
			want: []Result{{Load: LoadTCP, System: SysHAProxy, Rate: 2, P99: 2, Rounds: 4}}},
		{name: "fixed rate: the median p99, whatever the rate",
			in: []Result{{Load: LoadH1Fixed, System: SysNone, Rate: 3200, P99: 5 * time.Second}, {Load: LoadH1Fixed, System: SysNone, Rate: 4000, P99: 2 * time.Millisecond},
				{Load: LoadH1Fixed, System: SysNone, Rate: 4000, P99: 9 * time.Millisecond}},
			want: []Result{{Load: LoadH1Fixed, System: SysNone, Rate: 4000, P99: 9 * time.Millisecond, Rounds: 3}}},
		{name: "fixed rate, even count: the worse middle p99",
			in: []Result{{Load: LoadH1Fixed, System: SysNone, P99: 1}, {Load: LoadH1Fixed, System: SysNone, P99: 4},
				{Load: LoadH1Fixed, System: SysNone, P99: 2}, {Load: LoadH1Fixed, System: SysNone, P99: 3}},
			want: []Result{{Load: LoadH1Fixed, System: SysNone, P99: 3, Rounds: 4}}},
		{name: "n/a rounds are left out",
			in:   []Result{r(LoadH2, SysCauseway1, 0, "warm-up failed"), r(LoadH2, SysCauseway1, 7, "")},
			want: []Result{{Load: LoadH2, System: SysCauseway1, Rate: 7, P99: 7, Rounds: 1}}},
		{name: "never measured keeps the first reason",
			in:   []Result{r(LoadTCP, SysNginx, 0, "no stream module"), r(LoadTCP, SysNginx, 0, "other")},
			want: []Result{{Load: LoadTCP, System: SysNginx, NA: "no stream module"}}},
		{name: "pairs keep first-seen order across rounds",
			in: []Result{r(LoadH1Max, SysNone, 1, ""), r(LoadH1Max, SysNginx, 2, ""),
				r(LoadH1Max, SysNone, 3, ""), r(LoadH1Max, SysNginx, 4, "")},
			want: []Result{{Load: LoadH1Max, System: SysNone, Rate: 1, P99: 1, Rounds: 2}, {Load: LoadH1Max, System: SysNginx, Rate: 2, P99: 2, Rounds: 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := MedianRounds(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("MedianRounds = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("row %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}
