package localmesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// LoadOptions configure RunLoad, the demo load generator (`causeway load`).
type LoadOptions struct {
	// URL is requested with GET through the HTTP proxy of the environment
	// (HTTP_PROXY, which `causeway up` points at the workload's sidecar).
	URL string
	// TCP, instead of URL, is an address to open a connection to per
	// request, write a line to and read it back (a TCP echo service).
	TCP string
	// Rate is requests per second; 0 means 10.
	Rate float64
	// Name labels the reports.
	Name string
	// ReportEvery is the report interval; 0 means 2s.
	ReportEvery time.Duration
	// Timeout of one request; 0 means 5s.
	Timeout time.Duration
	// MaxInFlight bounds concurrent requests; a tick finding it reached is
	// counted as skipped, so a slow target is not buried. 0 means 64.
	MaxInFlight int
	Out         io.Writer
}

// LoadReport is one interval's tally.
type LoadReport struct {
	Requests int
	OK       int
	Failed   int
	Skipped  int
	// Status counts HTTP status codes ("200", "403"), or "ok"/"error" for TCP.
	Status map[string]int
	// Servers counts the "name" field of demo-app answers: which backend
	// served each request.
	Servers   map[string]int
	Latencies []time.Duration
	Errors    map[string]int // transport errors, by message
}

// String renders the report as one line of key=value fields.
func (r *LoadReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests=%d ok=%d failed=%d", r.Requests, r.OK, r.Failed)
	if r.Skipped > 0 {
		fmt.Fprintf(&b, " skipped=%d", r.Skipped)
	}
	b.WriteString(" status{" + joinCounts(r.Status) + "}")
	if len(r.Servers) > 0 {
		b.WriteString(" servers{" + joinCounts(r.Servers) + "}")
	}
	if len(r.Latencies) > 0 {
		l := slices.Clone(r.Latencies)
		slices.Sort(l)
		q := func(p float64) time.Duration { return l[min(len(l)-1, int(p*float64(len(l))))] }
		fmt.Fprintf(&b, " p50=%s p99=%s", q(.5).Round(10*time.Microsecond), q(.99).Round(10*time.Microsecond))
	}
	if len(r.Errors) > 0 {
		b.WriteString(" errors{" + joinCounts(r.Errors) + "}")
	}
	return b.String()
}

func joinCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+strconv.Itoa(m[k]))
	}
	return strings.Join(parts, ",")
}

func newReport() *LoadReport {
	return &LoadReport{Status: map[string]int{}, Servers: map[string]int{}, Errors: map[string]int{}}
}

// RunLoad sends requests at a steady rate until ctx ends, printing a report
// line per interval to Out. It owns one ticker goroutine (this one) and one
// goroutine per request in flight, all ended before it returns.
func RunLoad(ctx context.Context, o LoadOptions) error {
	if (o.URL == "") == (o.TCP == "") {
		return errors.New("load: give exactly one of a URL or a TCP address")
	}
	if o.Rate <= 0 {
		o.Rate = 10
	}
	if o.ReportEvery <= 0 {
		o.ReportEvery = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	client := &http.Client{Timeout: o.Timeout, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: o.MaxInFlight, IdleConnTimeout: 30 * time.Second}}
	defer client.CloseIdleConnections()

	var mu sync.Mutex
	rep := newReport()
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, o.MaxInFlight)
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
	defer tick.Stop()
	report := time.NewTicker(o.ReportEvery)
	defer report.Stop()
	seq := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-report.C:
			mu.Lock()
			r := rep
			rep = newReport()
			mu.Unlock()
			fmt.Fprintf(o.Out, "%s %s %s\n", time.Now().Format("15:04:05"), o.Name, r)
		case <-tick.C:
			select {
			case sem <- struct{}{}:
			default:
				mu.Lock()
				rep.Skipped++
				mu.Unlock()
				continue
			}
			seq++
			n := seq
			wg.Go(func() {
				defer func() { <-sem }()
				start := time.Now()
				status, server, err := o.once(ctx, client, n)
				took := time.Since(start)
				if ctx.Err() != nil {
					return // cut short by the stop, not a failure
				}
				mu.Lock()
				defer mu.Unlock()
				rep.Requests++
				rep.Latencies = append(rep.Latencies, took)
				if err != nil {
					rep.Failed++
					rep.Errors[shortErr(err)]++
					return
				}
				rep.Status[status]++
				if server != "" {
					rep.Servers[server]++
				}
				if c, _ := strconv.Atoi(status); (c >= 200 && c < 400) || status == "ok" {
					rep.OK++
				} else {
					rep.Failed++
				}
			})
		}
	}
}

// once makes one request; it returns the status ("200", or "ok" for TCP)
// and the name of the demo-app that answered.
func (o *LoadOptions) once(ctx context.Context, client *http.Client, n int) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if o.TCP != "" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", o.TCP)
		if err != nil {
			return "", "", err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		msg := []byte("ping " + strconv.Itoa(n) + "\n")
		if _, err := c.Write(msg); err != nil {
			return "", "", err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return "", "", err
		}
		if !bytes.Equal(got, msg) {
			return "error", "", nil
		}
		return "ok", "", nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return "", "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var answer struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &answer) // not every answer is the demo-app's
	return strconv.Itoa(resp.StatusCode), answer.Name, nil
}

// shortErr keeps the last part of an error chain: the reason, without the
// URL every message repeats.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return strings.NewReplacer(",", ";", "=", ":", "}", ")").Replace(s)
}
