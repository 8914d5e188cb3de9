// Package sidecar runs one Causeway sidecar process: bootstrap, SVIDs from a
// SPIFFE Workload API, the proxy, and the control plane's config stream. It
// is what `causeway proxy` does, importable so that a binary holding only
// the data plane (cmd/causeway-proxy) can run it without linking the
// control plane's Kubernetes code, whose package initialisation alone costs
// more resident memory than the whole sidecar budget (issue 3: idle RSS
// <= 15 MB).
//
// What enters: Flags (the `causeway proxy` flags) and a context whose end
// stops the proxy. What leaves: the proxy's listeners and, with a control
// plane, ACKs and NACKs on its stream. Goroutines: Run blocks on the
// caller's goroutine; the proxy and the config stream own theirs and are
// gone when Run returns.
package sidecar
