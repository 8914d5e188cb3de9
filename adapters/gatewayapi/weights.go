package gatewayapi

// MaxWeight is the largest weight a Gateway API backendRef takes.
const MaxWeight = 1_000_000

// RelativeWeights turns weights in thousandths (spec.Backend) into the
// smallest integers with the same ratios, so "500m" and "1" come out as 1
// and 2 and nothing is lost. Only when the ratios need integers above max
// are they rounded (exact=false); a non-zero weight never rounds to zero,
// which would take a backend out that the split keeps in.
func RelativeWeights(ws []int64, max int64) (out []int64, exact bool) {
	var g int64
	for _, w := range ws {
		g = gcd(g, w)
	}
	out = make([]int64, len(ws))
	if g == 0 {
		return out, true // all zero: spec.Build refuses such a split
	}
	var top int64
	for i, w := range ws {
		out[i] = w / g
		top = max64(top, out[i])
	}
	if top <= max {
		return out, true
	}
	for i, w := range out {
		r := (w*max + top/2) / top
		if r == 0 && w > 0 {
			r = 1
		}
		out[i] = r
	}
	return out, false
}

// Percentages turns weights into integers summing to exactly 100, by the
// largest remainder, for targets that want percentages (Istio). exact says
// whether every share was already a whole percentage.
func Percentages(ws []int64) (out []int64, exact bool) {
	var total int64
	for _, w := range ws {
		total += w
	}
	out = make([]int64, len(ws))
	if total == 0 {
		return out, true
	}
	exact = true
	var sum int64
	rem := make([]int64, len(ws))
	for i, w := range ws {
		out[i] = w * 100 / total
		rem[i] = w * 100 % total
		if rem[i] != 0 {
			exact = false
		}
		sum += out[i]
	}
	// Hand the missing points to the largest remainders, first index first
	// among equals, so the result is deterministic.
	for ; sum < 100; sum++ {
		best := -1
		for i := range rem {
			if rem[i] > 0 && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		out[best]++
		rem[best] = 0
	}
	return out, exact
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	if a < 0 {
		return -a
	}
	return a
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
