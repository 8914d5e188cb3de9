// Package deploy holds Causeway's Kubernetes manifests and embeds them, so
// the binary can install the CRDs without the source tree.
//
// What enters: nothing at run time; the YAML files under crds/ (SMI and
// causeway.dev CustomResourceDefinitions, apiextensions.k8s.io/v1), base/
// (kustomize base: namespace, control plane, gateway, RBAC, injector webhook),
// node-agent/ (overlay: base plus Causeway's Workload API on every node and
// an injector that hands proxies a projected token for it) and examples/. What leaves: FS, read-only. No goroutines.
//
// deploy_test.go checks every manifest against a real kube-apiserver with
// server-side dry-run, and the RBAC in base/ with SubjectAccessReviews.
package deploy
