// Package manifest reads Kubernetes-style manifests from files, directories
// and stdin, the way `kubectl apply -f` would, without a cluster.
//
// What enters: paths (a file, a directory walked recursively for *.yaml,
// *.yml and *.json in lexical order, or "-" for stdin) or raw bytes.
// What leaves: one adapters.Object per non-empty document (items of a
// `kind: List` expanded), each with its file, 0-based document index and the
// 1-based line where the document starts; plus spec.Diagnostics for every
// document that could not be parsed, naming file, document and the absolute
// line of the error in the file. Unreadable paths are returned as a plain
// error: they are usage problems, not problems in the manifests.
//
// The package only splits and parses; it does not know which kinds Causeway
// uses (adapters/pipeline decides that) and never decodes into typed objects.
// It starts no goroutines.
package manifest
