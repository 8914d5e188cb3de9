// Package smi translates Service Mesh Interface objects, every released
// version, into the canonical model of spec/ (DESIGN.md §3).
//
// What enters: adapters.Objects of the SMI groups (split, access, specs,
// metrics .smi-spec.io), each holding its document as JSON. What leaves: a
// spec.Input fragment (Splits, Routes, AccessPolicies) and diagnostics.
//
//  1. Translate looks each object up in one registry (group -> kind ->
//     version); an unknown kind or version is an error naming the field.
//  2. The document is decoded strictly into smi-sdk-go's Go type for its
//     version (local types for the access v1alpha4 draft): every unknown
//     field and wrong type is reported with its path; the two known slips
//     of real manifests are rewritten first, with a warning.
//  3. The SMI rules only SMI knows are applied: Quantity weights to
//     thousandths, FQDN service names, header maps or lists, regex checks
//     with SMI field paths, route kinds per version, service accounts and
//     IdentityBindings to SPIFFE IDs, destination ports; and one Causeway
//     extension, the TrafficTarget annotation
//     causeway.dev/source-trust-domains, which also allows each
//     ServiceAccount source in the listed (linked clusters') trust domains.
//  4. Generic checks (duplicates, dangling references, zero or negative
//     weights, nesting, missing ports) are left to spec.Build: each object's
//     Origin names the SMI object, and list orders are kept so Build's field
//     paths ("spec.backends[1]") point at what the user wrote.
//
// An object with an error is left out of the Input; the rest still
// translate. Translate is a pure function with no goroutines; callers own
// watching and merging.
package smi
