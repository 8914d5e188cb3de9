package deploy

import "embed"

// FS holds every manifest: crds/*.yaml, base/*.yaml, spire/*.yaml, examples/*/*.yaml.
//
//go:embed crds/*.yaml base/*.yaml spire/*.yaml examples/*/*.yaml
var FS embed.FS
