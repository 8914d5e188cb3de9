package control

import (
	"github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/spec"
)

// ManifestLoader is the Loader of a manifest directory: adapters/pipeline
// reads every YAML/JSON file under it, translates Kubernetes and SMI kinds
// and builds the snapshot.
func ManifestLoader(opts pipeline.Options) Loader {
	return func(dir string) (*spec.Snapshot, spec.Diagnostics, error) {
		snap, diags, _, err := pipeline.Load([]string{dir}, nil, opts)
		return snap, diags, err
	}
}
