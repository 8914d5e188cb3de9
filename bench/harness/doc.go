// Package harness drives `make bench`: the side-by-side comparison of
// Causeway's proxy with no proxy, HAProxy and NGINX on loopback (issue 3,
// "Benchmarks"), and of crossing clusters through the east-west gateway
// with the same two sidecars talking mTLS directly (crosscluster.go). Its
// numbers are figures for people, never test assertions.
//
// What enters: a Plan (systems, loads, duration, rounds, CPU lists, the
// causeway binaries: the sidecar's, and the full CLI that runs `identity
// serve` and `gateway` for the cross-cluster systems). What leaves: a Report (Run) with one Result per (load,
// system) pair, the median of the rounds (MedianRounds), idle memory and a
// profile summary, and its Markdown form (Render) with ratios to the best of
// HAProxy and NGINX and whether issue 3's targets were met (Targets).
//
// Data flow of Run:
//  1. The upstream (ServeUpstream: HTTP/1.1 + h2c with a fixed body, and a
//     TCP sink) starts as a child process (`benchreport upstream`), pinned to
//     the load CPU, so its CPU time is read apart from the generators'.
//  2. When a cross-cluster system is asked for, StartIdentities creates two
//     CAs and starts two `causeway identity serve` processes (pinned to the
//     load CPU, each serving the other trust domain's bundle as federated)
//     that live as long as the run.
//  3. For each round, for each system: StartSystem writes its config
//     (HAProxyConfig, NginxConfig, CausewayClientConfig/CausewayServerConfig)
//     into the scratch directory, starts it pinned to the proxy CPU and waits
//     until it proxies; then every load runs on it with a warm-up, CPU and
//     peak memory sampled from /proc around the load (Sample, ResetPeak);
//     then the system is stopped by PID (Running.Stop).
//  4. Results collapse to the median round; Render writes the tables, and
//     the crossing-clusters table (renderCrossing) when both cross-cluster
//     systems ran.
//
// Processes and goroutines: the Workload APIs are ended by PID when Run
// returns (Identities.Stop); every process the harness starts is its child,
// started through StartPinned or pinnedCmd and ended by its own PID (SIGTERM,
// then SIGKILL), with Pdeathsig so none outlives an interrupted run. wrk,
// h2load and perf are child processes that exit by themselves. The
// fixed-rate HTTP/1.1 generator (FixedRate) and the TCP client (Bulk) run in
// goroutines of the caller, which waits for them before returning; each
// Child owns one goroutine that waits for its process.
//
// Parsing (ParseWrk, ParseH2load, ParseH2loadLog, TopPerf, TopDSO) is pure
// and table-tested on output recorded from the real tools in testdata/.
package harness
