//go:build !unix

package loopback

// reserve has no cross-process lock here: FreePorts' probe alone decides.
func reserve(int) bool { return true }
