// Package adapters holds what every translator between the world and spec/
// shares: the Object an input document becomes before translation.
//
// Data flow: a reader (manifest/ for files, kube/ for informers) produces
// Objects; translators (smi/, kube/) turn Objects into a spec.Input fragment
// plus diagnostics; cmd/ or control/ merges fragments and calls spec.Build.
// Translators are pure functions; watching lives beside them, never inside.
package adapters
