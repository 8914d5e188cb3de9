// Package kubetest runs a real etcd and kube-apiserver on loopback for
// integration tests, one pair per test binary.
//
// What enters: the binaries built by scripts/kube-apiserver.sh, found through
// KUBE_APISERVER_BIN and ETCD_BIN or in the script's default cache directory
// (etcd also on $PATH). What leaves: a *rest.Config for a cluster-admin user
// (a static bearer token in group system:masters), with the apiserver's own
// serving certificate as the trusted CA.
//
// Goroutines and processes: Main starts both processes before m.Run and stops
// them, by PID, after it returns; the processes also get SIGKILL from the
// kernel if the test binary dies first (Pdeathsig), so no apiserver outlives
// a crashed test. Start/Stop are for callers that manage the lifetime
// themselves. Nothing here is safe to use from production code.
//
// When the binaries are missing, tests that call Config are skipped with a
// message saying how to build them, unless CAUSEWAY_REQUIRE_KUBE is set (CI
// sets it after running the script), in which case they fail.
package kubetest
