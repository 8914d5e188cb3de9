package metrics

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// Aggregator keeps recent scrapes so that counts can be given over a
// window, as the SMI TrafficMetrics API asks, rather than since each proxy
// started.
type Aggregator struct {
	Source MetricsSource
	// Window is the span metrics cover; 0 means 30s (SMI's default).
	Window time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	history []scrapeSet // oldest first
}

type scrapeSet struct {
	at    time.Time
	nodes map[string]Scrape // by node ID
}

func (a *Aggregator) window() time.Duration {
	if a.Window > 0 {
		return a.Window
	}
	return 30 * time.Second
}

func (a *Aggregator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Refresh scrapes every proxy once and records the result. A partial
// scrape is recorded too; its error names the proxies missing.
func (a *Aggregator) Refresh(ctx context.Context) error {
	scrapes, err := a.Source.Scrape(ctx)
	set := scrapeSet{at: a.now(), nodes: make(map[string]Scrape, len(scrapes))}
	for _, s := range scrapes {
		set.nodes[s.Node.ID] = s
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.history = append(a.history, set)
	// Keep what the next window needs: everything newer than one window
	// before now, plus the newest set older than that as its baseline.
	cut := set.at.Add(-a.window())
	i := 0
	for i+1 < len(a.history) && !a.history[i+1].at.After(cut) {
		i++
	}
	a.history = slices.Delete(a.history, 0, i)
	return err
}

// Run refreshes every interval until ctx ends. The caller owns the
// goroutine.
func (a *Aggregator) Run(ctx context.Context, interval time.Duration, onErr func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := a.Refresh(ctx); err != nil && onErr != nil {
			onErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// View is the traffic of every proxy over one window: the latest scrape
// minus the baseline, the scrape closest to Window before it (so Window may
// exceed the configured one by up to one scrape interval).
type View struct {
	At     time.Time     // time of the latest scrape
	Window time.Duration // latest minus baseline; 0 when there is no baseline yet
	Nodes  []Scrape      // flows are deltas over Window; counts since start when Window is 0
}

// View computes the current window. ok is false before the first scrape.
func (a *Aggregator) View() (View, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.history) == 0 {
		return View{}, false
	}
	latest := a.history[len(a.history)-1]
	// Refresh keeps at most one set at or before latest-Window, first: the
	// baseline is the set closest to one window back.
	var base *scrapeSet
	if len(a.history) > 1 {
		base = &a.history[0]
	}
	v := View{At: latest.at}
	if base != nil {
		v.Window = latest.at.Sub(base.at)
	}
	for _, id := range sortedKeys(latest.nodes) {
		cur := latest.nodes[id]
		d := Scrape{Node: cur.Node, Flows: map[FlowKey]Flow{}}
		var prev map[FlowKey]Flow
		if base != nil {
			prev = base.nodes[id].Flows
		}
		for k, f := range cur.Flows {
			d.Flows[k] = delta(f, prev[k])
		}
		v.Nodes = append(v.Nodes, d)
	}
	return v, true
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// delta subtracts a baseline. A counter that went down means the proxy
// restarted in between (Prometheus' rate() rule): the current value is then
// all there is since the restart.
func delta(cur, base Flow) Flow {
	if cur.Success < base.Success || cur.Failure < base.Failure {
		return cur
	}
	out := Flow{Success: cur.Success - base.Success, Failure: cur.Failure - base.Failure}
	prev := map[float64]float64{}
	for _, b := range base.Latency {
		prev[b.UpperBound] = b.Count
	}
	for _, b := range cur.Latency {
		if b.Count < prev[b.UpperBound] {
			return cur
		}
		out.Latency = append(out.Latency, Bucket{UpperBound: b.UpperBound, Count: b.Count - prev[b.UpperBound]})
	}
	return out
}

// Add sums flows (cumulative buckets add bound by bound).
func (f Flow) Add(o Flow) Flow {
	out := Flow{Success: f.Success + o.Success, Failure: f.Failure + o.Failure}
	byBound := map[float64]float64{}
	for _, b := range f.Latency {
		byBound[b.UpperBound] += b.Count
	}
	for _, b := range o.Latency {
		byBound[b.UpperBound] += b.Count
	}
	out.Latency = sortedBuckets(byBound)
	return out
}

// sortedBuckets turns counts by upper bound into buckets in bound order.
func sortedBuckets(byBound map[float64]float64) []Bucket {
	out := make([]Bucket, 0, len(byBound))
	for ub, c := range byBound {
		out = append(out, Bucket{UpperBound: ub, Count: c})
	}
	slices.SortFunc(out, func(a, b Bucket) int { return cmp.Compare(a.UpperBound, b.UpperBound) })
	return out
}

// Quantile estimates the q-quantile of latency in seconds from cumulative
// buckets the way Prometheus' histogram_quantile does: find the bucket the
// rank falls in and interpolate linearly inside it, taking 0 as the lower
// bound of the first bucket. A rank in the +Inf bucket gives the highest
// finite bound. ok is false when there are no observations.
func Quantile(q float64, buckets []Bucket) (float64, bool) {
	if len(buckets) == 0 {
		return 0, false
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 {
		return 0, false
	}
	rank := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range buckets {
		if b.Count >= rank {
			if math.IsInf(b.UpperBound, 1) {
				return prevBound, true
			}
			if b.Count == prevCount {
				return b.UpperBound, true
			}
			return prevBound + (b.UpperBound-prevBound)*(rank-prevCount)/(b.Count-prevCount), true
		}
		prevBound, prevCount = b.UpperBound, b.Count
	}
	return prevBound, true
}
