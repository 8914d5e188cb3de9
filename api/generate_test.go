package api_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates every .pb.go into a temporary
// directory with scripts/protoc.sh and compares it with the committed file,
// so a .proto edit without `make generate` fails here.
func TestGeneratedCodeIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: builds the pinned protoc plugins on first use")
	}
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not on PATH (install Debian's protobuf-compiler or run `make generate` as root); cannot check generated code")
	}
	out := t.TempDir()
	cmd := exec.Command("bash", "../scripts/protoc.sh", out)
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/protoc.sh: %v\n%s", err, b)
	}
	var checked int
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.go") {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		t.Run(rel, func(t *testing.T) {
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join("..", rel))
			if err != nil {
				t.Fatalf("%s is generated but not committed: %v", rel, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is stale: run `make generate` and commit the result", rel)
			}
		})
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("scripts/protoc.sh generated no .pb.go files")
	}
}
