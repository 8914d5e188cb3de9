// Package pipeline is the one ordered list of translators and the path from
// manifests to a snapshot.
//
// Data flow:
//
//  1. adapters/manifest reads files, directories or stdin into Objects;
//  2. Translate hands each Object to the first translator of Translators()
//     whose Handles accepts it (kube core kinds, then SMI); an Object no
//     translator takes is returned as ignored, never dropped in silence;
//  3. the fragments are merged into one spec.Input;
//  4. Load calls spec.Build, which validates, resolves references, keeps the
//     last of two documents defining one object (as kubectl apply does) and
//     orders everything into a deterministic Snapshot.
//
// What enters: Objects (or paths). What leaves: spec.Input or *spec.Snapshot,
// every diagnostic sorted, and the ignored Objects. Everything here is a pure
// function of its inputs; no goroutines.
package pipeline
