package gatewayapi

import (
	"reflect"
	"testing"
)

func TestRelativeWeights(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        []int64 // thousandths
		want      []int64
		wantExact bool
	}{
		{"percent", []int64{90000, 10000}, []int64{9, 1}, true},
		{"quantities 500m and 1", []int64{500, 1000}, []int64{1, 2}, true},
		{"thousandths kept", []int64{1, 999}, []int64{1, 999}, true},
		{"zero weight stays zero", []int64{0, 100000}, []int64{0, 1}, true},
		{"all zero", []int64{0, 0}, []int64{0, 0}, true},
		{"too fine to keep", []int64{1, 2_000_000_000}, []int64{1, 1_000_000}, false},
		{"rounded ratios", []int64{3, 2_999_999_999}, []int64{1, 1_000_000}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, exact := RelativeWeights(tc.in, MaxWeight)
			if !reflect.DeepEqual(got, tc.want) || exact != tc.wantExact {
				t.Errorf("RelativeWeights(%v) = %v, %v; want %v, %v", tc.in, got, exact, tc.want, tc.wantExact)
			}
		})
	}
}

func TestPercentages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		in        []int64
		want      []int64
		wantExact bool
	}{
		{"whole", []int64{90, 10}, []int64{90, 10}, true},
		{"relative", []int64{1, 3}, []int64{25, 75}, true},
		{"thirds", []int64{1, 1, 1}, []int64{34, 33, 33}, false},
		{"one third", []int64{500, 1000}, []int64{33, 67}, false},
		{"zero", []int64{0, 7}, []int64{0, 100}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, exact := Percentages(tc.in)
			var sum int64
			for _, p := range got {
				sum += p
			}
			if !reflect.DeepEqual(got, tc.want) || exact != tc.wantExact || sum != 100 {
				t.Errorf("Percentages(%v) = %v (sum %d), %v; want %v, %v", tc.in, got, sum, exact, tc.want, tc.wantExact)
			}
		})
	}
}
