package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/causeway-mesh/causeway/spec"
)

// The proxy's series this package reads (proxy/metrics.go). Labels
// "service" and "backend" hold spec.Key strings ("ns/name").
const (
	responsesTotal = "causeway_responses_total"
	latencySeconds = "causeway_response_latency_seconds"
	peerSeconds    = "causeway_inbound_peer_response_latency_seconds"
)

// FlowKey names traffic one proxy saw: its direction ("outbound" for calls
// the proxy's workload made), the service addressed and the backend service
// that answered (differs from Service under a TrafficSplit). Requests from
// linked clusters' callers, counted at the callee, have Direction Peer,
// the callee's Service, and the callers' trust domain as Backend.
type FlowKey struct {
	Direction string
	Service   string
	Backend   string
}

// Bucket is a cumulative histogram bucket.
type Bucket struct {
	UpperBound float64 // seconds; +Inf for the last
	Count      float64
}

// Flow is what a proxy counted for one FlowKey since it started.
type Flow struct {
	Success float64
	Failure float64
	Latency []Bucket // cumulative, ascending UpperBound
}

// Scrape is one proxy's counters at one time.
type Scrape struct {
	Node  spec.Node
	Flows map[FlowKey]Flow
}

// MetricsSource reads every connected proxy's counters. HTTPSource scrapes
// Prometheus text from proxies' admin servers; tests may supply their own.
type MetricsSource interface {
	Scrape(ctx context.Context) ([]Scrape, error)
}

// Target is a proxy to scrape.
type Target struct {
	Node spec.Node
	URL  string // e.g. http://127.0.0.1:9901/metrics
}

// HTTPSource scrapes Targets() concurrently. A proxy that cannot be scraped
// is left out of the result and named in the joined error; the others are
// still returned, so one stuck proxy does not blank the metrics API.
type HTTPSource struct {
	Targets func() []Target
	Client  *http.Client // nil: a client with a 2s timeout
}

// Scrape implements MetricsSource.
func (h *HTTPSource) Scrape(ctx context.Context) ([]Scrape, error) {
	client := h.Client
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	targets := h.Targets()
	out := make([]*Scrape, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Go(func() {
			flows, err := scrapeOne(ctx, client, tg.URL)
			if err != nil {
				errs[i] = fmt.Errorf("proxy %s: %w", tg.Node.ID, err)
				return
			}
			out[i] = &Scrape{Node: tg.Node, Flows: flows}
		})
	}
	wg.Wait()
	var res []Scrape
	for _, s := range out {
		if s != nil {
			res = append(res, *s)
		}
	}
	return res, errors.Join(errs...)
}

func scrapeOne(ctx context.Context, client *http.Client, url string) (map[FlowKey]Flow, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return ParseFlows(resp.Body)
}

// ParseFlows reads Prometheus text exposition and keeps the proxy's
// response counts and latency histograms, summed over the labels the SMI
// API does not use (route, status code, classification for latency).
func ParseFlows(r io.Reader) (map[FlowKey]Flow, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	flows := map[FlowKey]Flow{}
	if f := fams[responsesTotal]; f != nil {
		for _, m := range f.GetMetric() {
			k, l := flowKey(m)
			fl := flows[k]
			switch l["classification"] {
			case "success":
				fl.Success += m.GetCounter().GetValue()
			default:
				fl.Failure += m.GetCounter().GetValue()
			}
			flows[k] = fl
		}
	}
	if f := fams[latencySeconds]; f != nil {
		for _, m := range f.GetMetric() {
			k, _ := flowKey(m)
			fl := flows[k]
			fl.Latency = addBuckets(fl.Latency, m.GetHistogram())
			flows[k] = fl
		}
	}
	if f := fams[peerSeconds]; f != nil {
		for _, m := range f.GetMetric() {
			_, l := flowKey(m)
			k := FlowKey{Direction: Peer, Service: l["service"], Backend: l["trust_domain"]}
			fl := flows[k]
			n := float64(m.GetHistogram().GetSampleCount())
			if l["classification"] == "success" {
				fl.Success += n
			} else {
				fl.Failure += n
			}
			fl.Latency = addBuckets(fl.Latency, m.GetHistogram())
			flows[k] = fl
		}
	}
	return flows, nil
}

func flowKey(m *dto.Metric) (FlowKey, map[string]string) {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return FlowKey{Direction: l["direction"], Service: l["service"], Backend: l["backend"]}, l
}

// addBuckets merges h into acc by upper bound. Every proxy uses one bucket
// layout (proxy/metrics.go), so bounds line up; were they to differ, a bound
// one series lacks would under-count there rather than break the sum.
func addBuckets(acc []Bucket, h *dto.Histogram) []Bucket {
	byBound := map[float64]float64{}
	for _, b := range acc {
		byBound[b.UpperBound] += b.Count
	}
	sawInf := false
	for _, b := range h.GetBucket() {
		byBound[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		sawInf = sawInf || math.IsInf(b.GetUpperBound(), 1)
	}
	if !sawInf {
		byBound[math.Inf(1)] += float64(h.GetSampleCount())
	}
	return sortedBuckets(byBound)
}
