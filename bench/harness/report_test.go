package harness

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestTargets(t *testing.T) {
	t.Parallel()
	peers := []Result{
		{Load: LoadH1Max, System: SysHAProxy, Rate: 40000, P50: time.Millisecond, P99: 3 * time.Millisecond},
		{Load: LoadH1Max, System: SysNginx, Rate: 50000, P50: 2 * time.Millisecond, P99: 2 * time.Millisecond},
		// Not a peer: never the baseline even when fastest.
		{Load: LoadH1Max, System: SysNone, Rate: 90000},
	}
	tests := []struct {
		name    string
		results []Result
		idle    map[string]int64
		want    []string
	}{
		{name: "both met", results: append(peers[:3:3], Result{Load: LoadH1Max, System: SysCauseway1, Rate: 36000}),
			idle: map[string]int64{SysCauseway1: 12_000_000},
			want: []string{"(nginx, 50000 req/s): 0.72× (36000 req/s) — met", "12.0 MB — met"}},
		{name: "rps short, memory over", results: append(peers[:3:3], Result{Load: LoadH1Max, System: SysCauseway1, Rate: 30000}),
			idle: map[string]int64{SysCauseway1: 15_000_001},
			want: []string{"0.60× (30000 req/s) — NOT met", "15.0 MB — NOT met"}},
		{name: "causeway failed to run", results: append(peers[:3:3], Result{Load: LoadH1Max, System: SysCauseway1, NA: "no proxy command"}),
			want: []string{"best peer: not measured", "15.0 MB: not measured"}},
		{name: "no peer", results: []Result{{Load: LoadH1Max, System: SysCauseway1, Rate: 1}},
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
			{Load: LoadH1Max, System: SysHAProxy, Rate: 40000, P50: time.Millisecond, P99: 4 * time.Millisecond, Wall: 10 * time.Second, ProxyCPU: 10 * time.Second, LoadCPU: 5 * time.Second},
			{Load: LoadH1Max, System: SysNginx, Rate: 50000, P50: 2 * time.Millisecond, P99: 2 * time.Millisecond, Wall: 10 * time.Second},
			{Load: LoadH1Max, System: SysCauseway1, Rate: 25000, P50: 3 * time.Millisecond, P99: 8 * time.Millisecond, Wall: 10 * time.Second, LoadCPU: 9500 * time.Millisecond},
			{Load: LoadTCP, System: SysNginx, NA: "no stream module"},
			{Load: LoadTCP, System: SysHAProxy, Rate: 2000, Wall: time.Second},
			{Load: LoadTCP, System: SysCauseway1, Rate: 3000, Wall: time.Second},
		},
		IdleRSS: map[string]int64{SysCauseway1: 9_000_000},
		Skipped: map[string]string{SysCauseway2: "causeway-2hop: exited"},
	}
	var buf bytes.Buffer
	Render(&buf, rep, Environment{Date: "d", Machine: "m", Commit: "c"})
	out := buf.String()
	tests := []struct {
		name, want string
	}{
		{"causeway rps ÷ best rate, p50 ÷ best p50, p99 ÷ best p99", "| causeway-1hop | 25000 | 3.00 ms | 8.00 ms | 0 | 0.00 | 0% | 95% | 0.0 MB | 0.50× | 3.00× | 4.00× |"},
		{"haproxy vs nginx", "| haproxy | 40000 | 1.00 ms | 4.00 ms | 0 | 10.00 | 100% | 50% | 0.0 MB | 0.80× | 1.00× | 2.00× |"},
		{"skipped system keeps its row", "| causeway-2hop | n/a: causeway-2hop: exited |"},
		{"tcp ratio to the only measured peer", "| causeway-1hop | 3000 | 0.00 | 0% | 0% | 0.0 MB | 1.50× |"},
		{"tcp n/a", "| nginx | n/a: no stream module |"},
		{"saturated load core is a caveat", "causeway-1hop h1-max: the load core was 95% busy"},
		{"target line", "0.50× (25000 req/s) — NOT met"},
		{"idle memory", "| causeway-1hop | 9.0 MB |"},
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
