package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The samples in testdata were printed by Debian's wrk 4.1.0 and h2load
// 1.52.0 against HAProxy/NGINX on loopback (502s: NGINX with its upstream
// down; socket errors: HTTP/1.1 sent to NGINX's h2c-only port).
func TestParseWrk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		text    string
		want    LoadResult
		wantErr string
	}{
		{name: "latency distribution", file: "wrk-haproxy-latency.txt",
			want: LoadResult{Requests: 22096, RPS: 11032.30, P50: 3850 * time.Microsecond, P99: 66 * time.Millisecond}},
		{name: "non-2xx answers are errors", file: "wrk-nginx-502.txt",
			want: LoadResult{Requests: 54474, RPS: 53750.09, P50: 49 * time.Microsecond, P99: 9120 * time.Microsecond, Errors: 54474}},
		{name: "socket errors are errors", file: "wrk-socket-errors.txt",
			want: LoadResult{Requests: 0, RPS: 0, Errors: 12925}},
		{name: "nothing printed (connection refused goes to stderr)", file: "wrk-refused.txt", wantErr: "Requests/sec"},
		{name: "without --latency", text: "  10 requests in 1.00s, 1.00KB read\nRequests/sec:     10.00\n",
			want: LoadResult{Requests: 10, RPS: 10}},
		{name: "seconds and minutes", text: "     50%    1.50s\n     99%    2.00m\n  5 requests in 9.00s, 1KB read\nRequests/sec: 0.55\n",
			want: LoadResult{Requests: 5, RPS: 0.55, P50: 1500 * time.Millisecond, P99: 2 * time.Minute}},
		{name: "no request count", text: "Requests/sec: 10.00\n", wantErr: "N requests in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.text
			if tt.file != "" {
				text = readTestdata(t, tt.file)
			}
			got, err := ParseWrk(text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseWrk error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseWrk = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseH2load(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		text    string
		want    LoadResult
		wantErr string
	}{
		{name: "timed run", file: "h2load-nginx.txt", want: LoadResult{Requests: 22382, RPS: 11191}},
		{name: "5xx answers are errors, counted once", file: "h2load-nginx-502.txt", want: LoadResult{Requests: 200, RPS: 23769.91, Errors: 200}},
		{name: "3xx is success to h2load but an error here",
			text: "finished in 1.00s, 10.00 req/s, 1KB/s\nrequests: 10 total, 10 started, 10 done, 10 succeeded, 0 failed, 0 errored, 0 timeout\nstatus codes: 8 2xx, 2 3xx, 0 4xx, 0 5xx\n",
			want: LoadResult{Requests: 10, RPS: 10, Errors: 2}},
		{name: "network errors", text: "finished in 1.00s, 5.00 req/s, 1KB/s\nrequests: 10 total, 10 started, 10 done, 5 succeeded, 5 failed, 5 errored, 1 timeout\n",
			want: LoadResult{Requests: 10, RPS: 5, Errors: 5}},
		{name: "no summary", text: "starting benchmark...\n", wantErr: "finished in"},
		{name: "no requests line", text: "finished in 1.00s, 5.00 req/s, 1KB/s\n", wantErr: "requests:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.text
			if tt.file != "" {
				text = readTestdata(t, tt.file)
			}
			got, err := ParseH2load(text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseH2load error = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("ParseH2load = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseH2loadLog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		file, text    string
		wantN         int
		wantBad       int64
		wantMin       time.Duration
		wantMax       time.Duration
		wantP50       time.Duration
		wantErrSubstr string
	}{
		{name: "200s", file: "h2load-log-nginx.tsv", wantN: 20, wantMin: 4759 * time.Microsecond, wantMax: 6980 * time.Microsecond, wantP50: 5398 * time.Microsecond},
		{name: "502s counted as bad", file: "h2load-log-502.tsv", wantN: 5, wantBad: 5, wantMin: 41 * time.Microsecond, wantMax: 311 * time.Microsecond, wantP50: 298 * time.Microsecond},
		{name: "empty", text: "", wantN: 0},
		{name: "two fields", text: "1\t200\n", wantErrSubstr: "line 1: 2 fields"},
		{name: "bad status", text: "1\t200\t5\n1\tOK\t5\n", wantErrSubstr: "line 2: status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			text := tt.text
			if tt.file != "" {
				text = readTestdata(t, tt.file)
			}
			lat, bad, err := ParseH2loadLog(strings.NewReader(text))
			if tt.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr) {
					t.Fatalf("error = %v, want one mentioning %q", err, tt.wantErrSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(lat) != tt.wantN || bad != tt.wantBad {
				t.Fatalf("got %d latencies, %d bad; want %d, %d", len(lat), bad, tt.wantN, tt.wantBad)
			}
			if tt.wantN == 0 {
				return
			}
			if lat[0] != tt.wantMin || lat[len(lat)-1] != tt.wantMax {
				t.Errorf("min/max = %v/%v, want %v/%v (sorted)", lat[0], lat[len(lat)-1], tt.wantMin, tt.wantMax)
			}
			if p := Percentile(lat, 0.5); p != tt.wantP50 {
				t.Errorf("p50 = %v, want %v", p, tt.wantP50)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"none", nil, 0.5, 0},
		{"one", []time.Duration{7}, 0.99, 7},
		{"p50 of 1..100 ms", hundred, 0.50, 50 * time.Millisecond},
		{"p99 of 1..100 ms", hundred, 0.99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 1, 100 * time.Millisecond},
		{"tiny q is the min", hundred, 0.0001, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Percentile(tt.sorted, tt.q); got != tt.want {
				t.Errorf("Percentile(q=%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}
