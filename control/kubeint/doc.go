// Package kubeint holds the end-to-end tests of `causeway control --kube`
// against real kube-apiservers (internal/kubetest): the built binary reads
// SMI resources applied with server-side apply and streams the result to a
// proxy's stream client (kube_test.go, traffic_test.go); and two clusters,
// each its own apiserver and control plane with federation on, peered with
// `causeway link`, import each other's exported Services
// (federation_test.go). It has no non-test code; it is a package of its own
// because kubetest needs TestMain, which would otherwise run for every
// control/ test.
package kubeint
