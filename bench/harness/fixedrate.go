package harness

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// FixedRateResult is one open-loop HTTP/1.1 run.
type FixedRateResult struct {
	Rate      int           // requests per second asked for
	Sent      int           // requests scheduled
	Errors    int           // transport errors and non-200 answers
	Elapsed   time.Duration // first schedule to last answer
	Latencies []time.Duration
}

// FixedRate sends rate requests per second to url for duration over conns
// keep-alive connections, open loop: request i is due at start + i/rate
// whether or not earlier ones have been answered, and its latency counts from
// when it was due, not from when a connection was free. A proxy that stalls
// therefore shows the queueing it caused (what wrk2 calls correcting
// coordinated omission; wrk2 is not packaged in Debian, hence this).
func FixedRate(ctx context.Context, url string, rate int, duration time.Duration, conns int) (FixedRateResult, error) {
	if rate <= 0 || conns <= 0 || duration <= 0 {
		return FixedRateResult{}, fmt.Errorf("fixed rate: rate %d, conns %d and duration %v must be > 0", rate, conns, duration)
	}
	total := int(int64(rate) * int64(duration) / int64(time.Second))
	tr := &http.Transport{
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	// The whole schedule fits in the buffer, so the dispatcher never blocks
	// and lateness shows up as latency, never as a slower schedule.
	due := make(chan time.Time, total)
	lat := make([][]time.Duration, conns)
	errs := make([]int, conns)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			mine := make([]time.Duration, 0, total/conns+1)
			for t := range due {
				if ctx.Err() != nil {
					errs[w]++
					continue
				}
				ok := get(ctx, client, url)
				if !ok {
					errs[w]++
				}
				mine = append(mine, time.Since(t))
			}
			lat[w] = mine
		})
	}

	start := time.Now()
	interval := time.Second / time.Duration(rate)
	for i := 0; i < total; {
		now := time.Now()
		// Hand out every request that is due; sleep until the next one.
		for ; i < total; i++ {
			t := start.Add(time.Duration(i) * interval)
			if t.After(now) {
				time.Sleep(t.Sub(now))
				break
			}
			due <- t
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(due)
	wg.Wait()
	res := FixedRateResult{Rate: rate, Sent: total, Elapsed: time.Since(start)}
	for w := range conns {
		res.Errors += errs[w]
		res.Latencies = append(res.Latencies, lat[w]...)
	}
	slices.Sort(res.Latencies)
	return res, ctx.Err()
}

func get(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Percentile is the q-quantile (0 < q <= 1) of sorted latencies by the
// nearest-rank method; 0 for none.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
