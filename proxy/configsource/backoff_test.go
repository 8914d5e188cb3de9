package configsource

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/causeway-mesh/causeway/spec"
)

func TestBackoffDelayBounds(t *testing.T) {
	t.Parallel()
	b := Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	cases := []struct {
		attempt int
		ceiling time.Duration // d before jitter
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{5, 3200 * time.Millisecond},
		{6, 5 * time.Second}, // 6.4s capped
		{40, 5 * time.Second},
		{1000, 5 * time.Second}, // no overflow
	}
	for _, tc := range cases {
		t.Run(tc.ceiling.String(), func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for range 200 {
				d := b.Delay(tc.attempt)
				if d < tc.ceiling/2 || d >= tc.ceiling {
					t.Fatalf("Delay(%d) = %v, want in [%v, %v)", tc.attempt, d, tc.ceiling/2, tc.ceiling)
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Fatalf("Delay(%d) gave one value in 200 draws: no jitter", tc.attempt)
			}
		})
	}
}

// TestRunBacksOffUnderFakeTime drives Run's reconnect loop with a session
// that fails, in a synctest bubble, so the waits are checked exactly and
// the test takes no real time.
func TestRunBacksOffUnderFakeTime(t *testing.T) {
	cases := []struct {
		name string
		// progress[i] says whether session i got a config before failing.
		progress []bool
		// wantCeil[i] is the backoff ceiling before session i+1.
		wantCeil []time.Duration
	}{
		{"control plane down: doubles up to the cap",
			[]bool{false, false, false, false, false, false, false, false},
			[]time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}},
		{"a session that got config resets the backoff",
			[]bool{false, false, false, true, false},
			[]time.Duration{100, 200, 400, 100, 200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, err := New(Options{Addr: "127.0.0.1:1", Node: spec.Node{ID: "n"}, Apply: func(*spec.NodeConfig) error { return nil }})
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithCancel(t.Context())
				var starts []time.Time
				c.session = func(context.Context) (bool, error) {
					i := len(starts)
					starts = append(starts, time.Now())
					if i == len(tc.progress) {
						cancel()
						return false, ctx.Err()
					}
					return tc.progress[i], errors.New("connection refused")
				}
				if err := c.Run(ctx); err != nil {
					t.Fatal(err)
				}
				if len(starts) != len(tc.progress)+1 {
					t.Fatalf("%d sessions, want %d", len(starts), len(tc.progress)+1)
				}
				for i, ceil := range tc.wantCeil {
					ceil *= time.Millisecond
					gap := starts[i+1].Sub(starts[i])
					if gap < ceil/2 || gap >= ceil {
						t.Errorf("wait before session %d = %v, want in [%v, %v)", i+1, gap, ceil/2, ceil)
					}
				}
				if got := c.Status().Reconnects; got != len(tc.progress) {
					t.Errorf("Reconnects = %d, want %d", got, len(tc.progress))
				}
			})
		})
	}
}
