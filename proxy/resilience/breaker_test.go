package resilience

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A breaker script step: wait, then either send one request with an outcome
// (expecting it to be admitted), expect a rejection, or open probes without
// finishing them; then check the state.
type step struct {
	sleep  time.Duration
	do     string // "ok", "fail", "reject", "hold" (admit and keep open), "release-ok", "release-fail"
	repeat int
	state  State
}

func TestBreakerStateMachine(t *testing.T) {
	t.Parallel()
	const openFor = 10 * time.Second
	cases := []struct {
		name   string
		probes int
		steps  []step
		// transitions OnStateChange must have seen, in order
		transitions string
	}{
		{
			name: "opens after consecutive failures only",
			steps: []step{
				{do: "fail", repeat: 2, state: Closed},
				{do: "ok", state: Closed}, // resets the count
				{do: "fail", repeat: 2, state: Closed},
				{do: "fail", state: Open},
				{do: "reject", repeat: 3, state: Open},
			},
			transitions: "closed->open",
		},
		{
			name: "rejects until OpenFor passes, then a successful probe closes",
			steps: []step{
				{do: "fail", repeat: 3, state: Open},
				{sleep: openFor - time.Millisecond, do: "reject", state: Open},
				{sleep: time.Millisecond, do: "ok", state: Closed},
				{do: "ok", repeat: 5, state: Closed},
			},
			transitions: "closed->open,open->half-open,half-open->closed",
		},
		{
			name: "a failed probe reopens for OpenFor again",
			steps: []step{
				{do: "fail", repeat: 3, state: Open},
				{sleep: openFor, do: "fail", state: Open},
				{sleep: openFor - time.Millisecond, do: "reject", state: Open},
				{sleep: time.Millisecond, do: "ok", state: Closed},
			},
			transitions: "closed->open,open->half-open,half-open->open,open->half-open,half-open->closed",
		},
		{
			name:   "half-open admits at most HalfOpenMaxProbes at once",
			probes: 2,
			steps: []step{
				{do: "fail", repeat: 3, state: Open},
				{sleep: openFor, do: "hold", repeat: 2, state: HalfOpen},
				{do: "reject", repeat: 3, state: HalfOpen},
				{do: "release-ok", state: Closed},
				{do: "release-fail", state: Closed}, // the other probe's late failure is ignored
				{do: "ok", state: Closed},
			},
			transitions: "closed->open,open->half-open,half-open->closed",
		},
		{
			name:   "a finished probe frees its half-open slot",
			probes: 1,
			steps: []step{
				{do: "fail", repeat: 3, state: Open},
				{sleep: openFor, do: "hold", state: HalfOpen},
				{do: "reject", state: HalfOpen},
				{do: "release-fail", state: Open},
				{sleep: openFor, do: "hold", state: HalfOpen},
				{do: "release-ok", state: Closed},
			},
			transitions: "closed->open,open->half-open,half-open->open,open->half-open,half-open->closed",
		},
		{
			name:   "a hung probe frees its slot after OpenFor",
			probes: 1,
			steps: []step{
				{do: "fail", repeat: 3, state: Open},
				{sleep: openFor, do: "hold", state: HalfOpen}, // never answers
				{sleep: openFor - time.Millisecond, do: "reject", state: HalfOpen},
				{sleep: time.Millisecond, do: "ok", state: Closed},
			},
			transitions: "closed->open,open->half-open,half-open->closed",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var seen []string
				b := NewBreaker(BreakerOptions{
					ConsecutiveFailures: 3,
					OpenFor:             openFor,
					HalfOpenMaxProbes:   tc.probes,
					OnStateChange:       func(from, to State) { seen = append(seen, from.String()+"->"+to.String()) },
				})
				var held []func(bool)
				for i, st := range tc.steps {
					time.Sleep(st.sleep)
					for range max(st.repeat, 1) {
						switch st.do {
						case "ok", "fail", "hold":
							done, ok := b.Allow()
							if !ok {
								t.Fatalf("step %d (%s): rejected in state %v", i, st.do, b.State())
							}
							if st.do == "hold" {
								held = append(held, done)
							} else {
								done(st.do == "ok")
							}
						case "reject":
							if done, ok := b.Allow(); ok {
								done(true)
								t.Fatalf("step %d: admitted in state %v, want rejected", i, b.State())
							}
						case "release-ok", "release-fail":
							held[0](st.do == "release-ok")
							held = held[1:]
						}
					}
					if got := b.State(); got != st.state {
						t.Fatalf("step %d (%s x%d): state %v, want %v", i, st.do, max(st.repeat, 1), got, st.state)
					}
				}
				if got := strings.Join(seen, ","); got != tc.transitions {
					t.Fatalf("transitions %s, want %s", got, tc.transitions)
				}
			})
		})
	}
}

func TestStateString(t *testing.T) {
	t.Parallel()
	for s, want := range map[State]string{Closed: "closed", Open: "open", HalfOpen: "half-open", State(9): "unknown"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

// TestBreakerConcurrent hammers a breaker with random outcomes from many
// goroutines while time passes (run with -race): the half-open probe limit
// must hold at every moment, and every probe slot must be returned.
func TestBreakerConcurrent(t *testing.T) {
	t.Parallel()
	for _, probes := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d probes", probes), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var halfOpens atomic.Int32
				b := NewBreaker(BreakerOptions{ConsecutiveFailures: 4, OpenFor: 50 * time.Millisecond, HalfOpenMaxProbes: probes,
					OnStateChange: func(_, to State) {
						if to == HalfOpen {
							halfOpens.Add(1)
						}
					}})
				var wg sync.WaitGroup
				var mu sync.Mutex
				maxProbes := 0
				for range 8 {
					wg.Go(func() {
						for range 400 {
							done, ok := b.Allow()
							if !ok {
								time.Sleep(5 * time.Millisecond)
								continue
							}
							b.mu.Lock()
							p := b.probes
							b.mu.Unlock()
							mu.Lock()
							maxProbes = max(maxProbes, p)
							mu.Unlock()
							time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
							done(rand.IntN(3) != 0)
						}
					})
				}
				wg.Wait()
				if halfOpens.Load() == 0 {
					t.Fatal("the breaker never went half-open: the test exercised nothing")
				}
				if maxProbes > probes {
					t.Fatalf("saw %d probes in flight, limit %d", maxProbes, probes)
				}
				if b.probes != 0 {
					t.Fatalf("%d probe slots still taken after every done", b.probes)
				}
			})
		})
	}
}
