// Package harness drives `make bench`: the side-by-side comparison of
// Causeway's proxy with no proxy, HAProxy and NGINX on loopback (issue 3,
// "Benchmarks"). Its numbers are figures for people, never test assertions.
//
// What enters: a Plan (which systems, which loads, how long, which CPU
// cores) and the paths of the binaries under test. What leaves: one Result
// per (load, system) pair and a Markdown report (Render) with the ratio of
// Causeway to the best peer and whether the targets were met.
//
// Processes and goroutines:
//   - The upstream (Upstream: a tiny HTTP/1.1 + h2c server and a TCP sink)
//     runs as a child process of the harness so its CPU time can be read from
//     /proc apart from the load generators'.
//   - Each system under test (System) is a child process (two for Causeway's
//     two hops), started by Start, pinned to the proxy core with taskset, and
//     ended by its PID in Stop. Nothing else is ever signalled.
//   - Load generators: wrk and h2load are child processes; the fixed-rate
//     HTTP/1.1 generator (FixedRate) and the TCP bulk client (Bulk) run in
//     the harness's own goroutines, which the calling goroutine owns and
//     waits for before returning.
//
// Parsing (ParseWrk, ParseH2load, ParseH2loadLog) is pure and table-tested
// on outputs recorded from the real tools in testdata/.
package harness
