// Package kubeint holds the end-to-end test of `causeway control --kube`
// against a real kube-apiserver (internal/kubetest): the built binary reads
// SMI resources applied with server-side apply and streams the result to a
// proxy's stream client. It has no non-test code; it is a package of its
// own because kubetest needs TestMain, which would otherwise run for every
// control/ test.
package kubeint
