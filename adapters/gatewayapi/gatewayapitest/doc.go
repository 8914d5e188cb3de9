// Package gatewayapitest holds what the tests of adapters/gatewayapi,
// adapters/istio and adapters/linkerd share: the example manifest sets as
// snapshots, golden-file comparison with -update, the target projects'
// CRDs fetched through the Go module proxy, and server-side dry-run of
// rendered objects on a real kube-apiserver (internal/kubetest).
//
// What enters: paths of examples (the repository's examples/bookstore and
// ../shared/smi-examples), module versions. What leaves: snapshots, CRD
// file paths in the module cache, test failures naming the object and the
// apiserver's message. No goroutines; test code only.
package gatewayapitest
