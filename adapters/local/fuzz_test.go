package local

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/causeway-mesh/causeway/adapters/manifest"
)

// FuzzDecode feeds arbitrary manifests to Decode. Properties: no panic; every
// workload kept has an identity and in-range ports, and no two of its
// loopback ports clash with another kept workload's; decoding is a pure
// function (twice gives the same result).
func FuzzDecode(f *testing.F) {
	f.Add([]byte(bookstoreV1))
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "bookstore", "*.yaml"))
	for _, file := range files {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("apiVersion: causeway.dev/v1alpha1\nkind: Mesh\nmetadata: {name: m}\nspec: {mode: permissive, trustDomain: a.b}\n"))
	f.Add([]byte("apiVersion: causeway.dev/v1alpha1\nkind: ClusterLink\nmetadata: {name: l}\nspec: {clusters: [a, b]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, _ := manifest.Parse("f.yaml", data)
		r1, d1 := Decode(objs, Options{})
		r2, d2 := Decode(objs, Options{})
		if !reflect.DeepEqual(r1, r2) || !reflect.DeepEqual(d1, d2) {
			t.Fatalf("Decode is not deterministic")
		}
		ports := map[int32]bool{}
		for _, w := range r1.Workloads {
			if w.Identity.IsZero() {
				t.Fatalf("workload %s kept without identity", w.Key)
			}
			used := []int32{w.Port, w.Outbound.HTTPProxyPort}
			for _, u := range w.Outbound.Upstreams {
				used = append(used, u.LocalPort)
				if u.Port < 1 || u.Port > 65535 {
					t.Fatalf("workload %s: upstream port %d kept", w.Key, u.Port)
				}
			}
			for _, p := range used {
				if p < 0 || p > 65535 {
					t.Fatalf("workload %s: port %d kept", w.Key, p)
				}
				if p != 0 && ports[p] {
					t.Fatalf("workload %s: port %d kept twice", w.Key, p)
				}
				ports[p] = true
			}
		}
	})
}
