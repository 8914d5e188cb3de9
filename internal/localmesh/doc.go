// Package localmesh runs a whole mesh on loopback from a folder of manifests:
// `causeway up -f DIR` (issue 5, DESIGN.md §8).
//
// What enters: a directory of Kubernetes, SMI and causeway.dev/v1alpha1
// manifests (Mesh, Workload), and the path of the causeway binary to run the
// children with.
//
// What runs, all bound to 127.0.0.1:
//
//  1. a CA for the folder's trust domain and a SPIFFE Workload API on a unix
//     socket in a fresh run directory; the attestor (pidAttestor) knows only
//     the PIDs of the sidecars this process started, so an SVID goes to
//     exactly those processes, by the kernel's peer credentials;
//  2. the control plane (control.Server) with mTLS from the same CA, its
//     REST and SMI metrics API, and a control.DirSource watching the folder;
//     Loader adds what the Workloads mean (adapters/local.Attach) before
//     spec.Build, so an invalid edit is rejected whole and the last good
//     snapshot keeps serving;
//  3. one sidecar per Workload, a child process `causeway proxy --control`
//     (the same sidecar an injected pod runs: a proxy.Proxy fed by
//     proxy/configsource over the mTLS stream, its SVID and bundle from the
//     Workload API, attested by its PID), then the
//     Workload's command with HTTP_PROXY pointing at its sidecar — servers
//     first, callers once the servers listen.
//
// What leaves: a startup summary and one line per change on Options.Out
// (applied with what changed, or rejected with every error; workloads
// started and stopped), the commands' output prefixed with their names (the
// sidecars log to the run directory; a sidecar that dies has its last lines
// printed), and on ctx's end every child stopped (SIGTERM to its process
// group, SIGKILL after a grace period) and the run directory removed. A
// run killed before it could clean up leaves a run directory that the next
// run removes; its children died with it (Pdeathsig).
//
// Goroutines: Run owns the DirSource goroutine (loads, publishes, then
// reconciles the children, in that order, on that goroutine), the gRPC,
// REST and Workload API servers' Serve goroutines, the metrics scraper and
// one waiter per child process. All of them end before Run returns.
//
// The load generator of the examples (`causeway load`) is RunLoad here too.
package localmesh
