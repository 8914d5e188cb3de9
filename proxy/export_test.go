package proxy

import "time"

// SetHeaderTimeoutForTest shortens the fast path's request-head timeout and
// returns the function that restores it.
func SetHeaderTimeoutForTest(d time.Duration) func() {
	old := h1HeaderTimeout
	h1HeaderTimeout = d
	return func() { h1HeaderTimeout = old }
}
