package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exportServices = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop, annotations: {causeway.dev/export: "true"}}
spec: {ports: [{name: tcp-pg, port: 5432}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: web
      containers: [{name: web, image: web}]
`

// TestExport: what `causeway export` prints is what makes a Service
// exported: fed back through the manifests, --list shows it, with its ports
// and identity, beside the one exported by annotation.
func TestExport(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "services.yaml"), []byte(exportServices), 0o644); err != nil {
		t.Fatal(err)
	}
	list := func() []exportListing {
		t.Helper()
		code, out, errs := runCLI(t, "export", "--list", "-f", dir, "-o", "json")
		if code != 0 {
			t.Fatalf("export --list: exit %d: %s", code, errs)
		}
		var got []exportListing
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("export --list -o json: %v\n%s", err, out)
		}
		return got
	}
	if got := list(); len(got) != 1 || got[0].Service != "shop/db" || got[0].Ports[0] != "5432/tcp" {
		t.Fatalf("before: exports %+v, want only shop/db (annotation)", got)
	}
	code, out, errs := runCLI(t, "export", "shop/web")
	if code != 0 {
		t.Fatalf("export shop/web: exit %d: %s", code, errs)
	}
	if err := os.WriteFile(filepath.Join(dir, "export.yaml"), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	got := list()
	if len(got) != 2 || got[1].Service != "shop/web" {
		t.Fatalf("after: exports %+v, want shop/db and shop/web", got)
	}
	if len(got[1].Identities) != 1 || got[1].Identities[0] != "spiffe://cluster.local/ns/shop/sa/web" {
		t.Errorf("shop/web identities %v, want its ServiceAccount's", got[1].Identities)
	}
	code, out, _ = runCLI(t, "export", "--list", "-f", dir)
	if code != 0 || !strings.Contains(out, "shop/web") || !strings.Contains(out, "8080/http") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

func TestExportUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no names", []string{"export"}, "name at least one Service"},
		{"not ns/name", []string{"export", "web"}, "want NAMESPACE/NAME"},
		{"bad namespace", []string{"export", "Shop/web"}, `namespace "Shop"`},
		{"names with --list", []string{"export", "--list", "shop/web"}, "not names"},
		{"-f without --list", []string{"export", "-f", "x.yaml", "shop/web"}, "give --list"},
		{"bad output", []string{"export", "-o", "table", "shop/web"}, "want yaml or json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errs := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tt.want)
			}
		})
	}
}
