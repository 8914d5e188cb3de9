package proxy

import (
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// TapEvent is one request summary on /tap, written as a JSON line. An
// opaque TCP flow is one event too, sent when it ends (or is refused), with
// Protocol "tcp", its byte counts and its duration as LatencyMs; it has no
// method, path or status.
type TapEvent struct {
	Time           time.Time `json:"time"`
	Direction      string    `json:"direction"`
	Protocol       string    `json:"protocol,omitempty"` // "tcp" for a flow; empty for HTTP
	Service        string    `json:"service"`
	Route          string    `json:"route,omitempty"`
	Backend        string    `json:"backend,omitempty"`
	Endpoint       string    `json:"endpoint,omitempty"`
	Caller         string    `json:"caller,omitempty"`
	Method         string    `json:"method"`
	Authority      string    `json:"authority"`
	Path           string    `json:"path"`
	Status         int       `json:"status"`
	GRPCStatus     string    `json:"grpcStatus,omitempty"`
	Classification string    `json:"classification"`
	LatencyMs      float64   `json:"latencyMs"`
	// BytesIn and BytesOut count a flow's bytes from and to the client.
	BytesIn  int64 `json:"bytesIn,omitempty"`
	BytesOut int64 `json:"bytesOut,omitempty"`
}

// flowTap says what a TCP flow's tap event names besides its bytes.
type flowTap struct {
	caller   spiffeid.ID
	backend  string
	endpoint string
}

// tapFlow publishes a TCP flow that ended (class "success") or never got
// through ("denied": authorization; "failure": no backend or dial failed).
func (p *Proxy) tapFlow(direction, service string, f flowTap, start time.Time, class string, in, out int64) {
	if !p.tap.active() {
		return
	}
	ev := &TapEvent{Time: start, Direction: direction, Protocol: "tcp", Service: service, Backend: f.backend,
		Endpoint: f.endpoint, Classification: class, LatencyMs: float64(time.Since(start).Microseconds()) / 1000,
		BytesIn: in, BytesOut: out}
	if !f.caller.IsZero() {
		ev.Caller = f.caller.String()
	}
	p.tap.publish(ev)
}

// tapHub fans request summaries out to /tap subscribers. The request path
// pays one atomic load when nobody taps; a slow subscriber loses events
// (counted in its stream) instead of slowing requests down.
type tapHub struct {
	n    atomic.Int32
	mu   sync.Mutex
	subs map[chan *TapEvent]struct{}
}

func (h *tapHub) active() bool { return h.n.Load() > 0 }

func (h *tapHub) publish(ev *TapEvent) {
	h.mu.Lock()
	for ch := range h.subs {
		select {
		case ch <- ev:
		default: // subscriber is behind: drop rather than block a request
		}
	}
	h.mu.Unlock()
}

func (h *tapHub) subscribe() chan *TapEvent {
	ch := make(chan *TapEvent, 256)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan *TapEvent]struct{}{}
	}
	h.subs[ch] = struct{}{}
	h.n.Add(1)
	h.mu.Unlock()
	return ch
}

func (h *tapHub) unsubscribe(ch chan *TapEvent) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.n.Add(-1)
	h.mu.Unlock()
}

// serveTap streams events as JSON lines until the client goes away or the
// proxy closes.
func (h *tapHub) serveTap(done <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ch := h.subscribe()
		defer h.unsubscribe(ch)
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()
		enc := json.NewEncoder(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-done:
				return
			case ev := <-ch:
				if err := enc.Encode(ev); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
	}
}
