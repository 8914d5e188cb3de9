package harness

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LoadResult is what one load tool reported about one run.
type LoadResult struct {
	Requests int64   // completed requests
	RPS      float64 // requests per second, as the tool reported it
	P50, P99 time.Duration
	Errors   int64 // socket errors, failed/errored/timed-out requests, non-2xx answers
}

var (
	wrkRPS      = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)\s*$`)
	wrkTotal    = regexp.MustCompile(`(?m)^\s*(\d+) requests in [0-9.]+\w+,`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	wrkSockErrs = regexp.MustCompile(`(?m)^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$`)
	wrkNon2xx   = regexp.MustCompile(`(?m)^\s*Non-2xx or 3xx responses: (\d+)\s*$`)
)

// ParseWrk reads the text wrk 4 prints with --latency. Requests/sec and the
// request count must be there; percentiles are zero without --latency.
func ParseWrk(out string) (LoadResult, error) {
	var r LoadResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output: no %q line", "Requests/sec:")
	}
	var err error
	if r.RPS, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, fmt.Errorf("wrk output: Requests/sec: %w", err)
	}
	m = wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk output: no %q line", "N requests in")
	}
	if r.Requests, err = strconv.ParseInt(m[1], 10, 64); err != nil {
		return r, fmt.Errorf("wrk output: requests: %w", err)
	}
	for _, p := range wrkPct.FindAllStringSubmatch(out, -1) {
		d, err := wrkDuration(p[2], p[3])
		if err != nil {
			return r, fmt.Errorf("wrk output: %s%% latency: %w", p[1], err)
		}
		if p[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m = wrkSockErrs.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.Errors += n
		}
	}
	if m = wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.Errors += n
	}
	return r, nil
}

// wrkDuration turns wrk's "690.00us" / "1.50ms" / "2.00s" / "1.00m" into a
// Duration.
func wrkDuration(num, unit string) (time.Duration, error) {
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	scale := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour}[unit]
	return time.Duration(v * float64(scale)), nil
}

var (
	h2Finished = regexp.MustCompile(`(?m)^finished in [0-9.]+\w+, ([0-9.]+) req/s,`)
	h2Requests = regexp.MustCompile(`(?m)^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout\s*$`)
	h2Status   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx\s*$`)
)

// ParseH2load reads the summary nghttp2's h2load prints. h2load gives no
// percentiles; ParseH2loadLog computes them from its --log-file.
func ParseH2load(out string) (LoadResult, error) {
	var r LoadResult
	m := h2Finished.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("h2load output: no %q line", "finished in")
	}
	var err error
	if r.RPS, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, fmt.Errorf("h2load output: req/s: %w", err)
	}
	m = h2Requests.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("h2load output: no %q line", "requests:")
	}
	n := make([]int64, len(m)-1)
	for i, s := range m[1:] {
		n[i], _ = strconv.ParseInt(s, 10, 64)
	}
	// total, started, done, succeeded, failed, errored, timeout
	// req/s is done / duration (the 502 sample in testdata shows it with 0
	// succeeded), so Requests is done and Errors says how many of them failed.
	r.Requests = n[2]
	// failed already holds errored (network) and timeout (a subset of
	// errored) and non-2xx/3xx answers; a 3xx counts as success in h2load
	// but the upstream never sends one, so it is an error here.
	r.Errors = n[4]
	if m = h2Status.FindStringSubmatch(out); m != nil {
		k, _ := strconv.ParseInt(m[2], 10, 64)
		r.Errors += k
	}
	return r, nil
}

// ParseH2loadLog reads h2load's --log-file (one request per line: start time
// in µs since the epoch, status code, duration in µs, tab-separated) and
// returns the sorted durations and how many answers were not 2xx.
func ParseH2loadLog(rd io.Reader) ([]time.Duration, int64, error) {
	var lat []time.Duration
	var bad int64
	sc := bufio.NewScanner(rd)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if len(f) == 1 && f[0] == "" {
			continue
		}
		if len(f) != 3 {
			return nil, 0, fmt.Errorf("h2load log line %d: %d fields, want 3", line, len(f))
		}
		status, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, 0, fmt.Errorf("h2load log line %d: status: %w", line, err)
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, 0, fmt.Errorf("h2load log line %d: duration: %w", line, err)
		}
		if status < 200 || status > 299 {
			bad++
		}
		lat = append(lat, time.Duration(us)*time.Microsecond)
	}
	if err := sc.Err(); err != nil {
		return nil, 0, fmt.Errorf("h2load log: %w", err)
	}
	slices.Sort(lat)
	return lat, bad, nil
}
