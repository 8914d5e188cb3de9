// Package configv1 is the generated Go code for the config stream
// (config.proto) plus FromSpec/ToSpec, the conversion between the wire
// messages and spec.NodeConfig. See package api for the protocol.
package configv1
