package control

import (
	"testing"

	"github.com/causeway-mesh/causeway/spec"
)

// TestOfferNewestWins: a stream that has not read yet holds only the newest
// snapshot, and offering never blocks the publisher.
func TestOfferNewestWins(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		offers []string
	}{
		{"one", []string{"a"}},
		{"burst while busy", []string{"a", "b", "c"}},
		{"many", []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := &stream{snaps: make(chan *spec.Snapshot, 1)}
			for _, v := range tc.offers {
				st.offer(&spec.Snapshot{Version: v})
			}
			got := <-st.snaps
			if want := tc.offers[len(tc.offers)-1]; got.Version != want {
				t.Fatalf("stream got %s, want the newest %s", got.Version, want)
			}
			select {
			case extra := <-st.snaps:
				t.Fatalf("a stale snapshot %s was queued behind the newest", extra.Version)
			default:
			}
		})
	}
}
