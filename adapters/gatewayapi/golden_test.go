package gatewayapi_test

import (
	"path/filepath"
	"testing"

	"github.com/causeway-mesh/causeway/adapters/gatewayapi"
	"github.com/causeway-mesh/causeway/adapters/gatewayapi/gatewayapitest"
)

// TestGolden renders examples/bookstore and every SMI example set and
// compares the YAML and the diagnostics with testdata/golden/<case>/. Run
// with -update to rewrite them, then read the diff: it is what the
// translation does.
func TestGolden(t *testing.T) {
	for _, c := range gatewayapitest.Cases(t) {
		t.Run(c.Name, func(t *testing.T) {
			objs, ds := gatewayapi.Render(c.Snapshot, gatewayapi.Options{})
			y, err := gatewayapi.Encode(objs, "yaml")
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("testdata", "golden", c.Name)
			gatewayapitest.Golden(t, filepath.Join(dir, "objects.yaml"), y)
			gatewayapitest.Golden(t, filepath.Join(dir, "diagnostics.txt"), []byte(gatewayapitest.Report(c, ds)))
			// Rendering is deterministic: a second run prints the same bytes.
			again, _ := gatewayapi.Render(c.Snapshot, gatewayapi.Options{})
			y2, _ := gatewayapi.Encode(again, "yaml")
			if string(y) != string(y2) {
				t.Error("two renderings of one snapshot differ")
			}
		})
	}
}
