// Package deploy holds Causeway's Kubernetes manifests and embeds them, so
// the binary can install the CRDs without the source tree.
//
// What enters: nothing at run time; the YAML files under crds/ (SMI,
// causeway.dev and MCS ServiceExport CustomResourceDefinitions,
// apiextensions.k8s.io/v1), base/
// (the default kustomization, one identity story: the control plane's CA,
// the node agent serving the Workload API from it on every node, sidecars
// and the east-west gateway attested by projected tokens, federation on),
// spire/ (overlay: SPIRE's agents and CSI driver instead of the node agent,
// no local CA, no federation) and examples/. What leaves: FS, read-only. No
// goroutines.
//
// deploy_test.go checks every manifest and rendered kustomization against a
// real kube-apiserver with server-side dry-run and strict field validation,
// and the RBAC with SubjectAccessReviews; federation_test.go runs the
// federation Secret store as the control plane's and the node agent's
// ServiceAccounts. cmd/causeway's tests parse every container's args with
// the real commands' flags.
package deploy
