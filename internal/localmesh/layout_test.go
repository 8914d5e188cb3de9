package localmesh

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestReadLayout: which folders are clusters, which links are made, and
// what is reported about the rest.
func TestReadLayout(t *testing.T) {
	t.Parallel()
	cluster := func(name, td string) string {
		return "apiVersion: causeway.dev/v1alpha1\nkind: Cluster\nmetadata: {name: " + name + "}\nspec: {trustDomain: " + td + "}\n"
	}
	link := func(name string, cs ...string) string {
		return "apiVersion: causeway.dev/v1alpha1\nkind: ClusterLink\nmetadata: {name: " + name + "}\nspec: {clusters: [" + strings.Join(cs, ", ") + "]}\n"
	}
	const svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: ns}\nspec: {ports: [{port: 80}]}\n"
	tests := []struct {
		name     string
		files    map[string]string
		clusters []string // names, in folder order; nil: a single-cluster folder
		links    []string
		warnings []string // substrings, in order
		err      string
	}{
		{
			name:  "a folder without cluster subfolders is one mesh",
			files: map[string]string{"svc.yaml": svc, "sub/more.yaml": svc},
		},
		{
			name: "two clusters and a link at the top level",
			files: map[string]string{"link.yaml": link("l", "west", "east"),
				"west/c.yaml": cluster("west", "west.td"), "west/svc.yaml": svc,
				"east/c.yaml": cluster("east", "east.td"), "docs/readme.yaml": svc, ".hidden/c.yaml": cluster("x", "x.td")},
			clusters: []string{"east", "west"},
			links:    []string{"l:west,east"},
		},
		{
			name: "a link inside a cluster folder, the same link twice, one to an unknown cluster",
			files: map[string]string{"a/c.yaml": cluster("a", "a.td") + "---\n" + link("ab", "a", "b"),
				"b/c.yaml": cluster("b", "b.td") + "---\n" + link("ab", "a", "b"),
				"top.yaml": link("ac", "a", "c") + "---\n" + svc},
			clusters: []string{"a", "b"},
			links:    []string{"ab:a,b"},
			warnings: []string{"top.yaml:6: Service ns/s: warning: not read: in a folder of clusters the top level holds only ClusterLinks",
				`top.yaml:1: ClusterLink ac: warning: cluster "c" is not one of this folder's clusters (a, b); link not made`},
		},
		{
			name:  "two Clusters in one folder",
			files: map[string]string{"a/c.yaml": cluster("a", "a.td") + "---\n" + cluster("b", "b.td")},
			err:   "2 Cluster objects; a cluster subfolder holds exactly one",
		},
		{
			name:  "the same cluster name twice",
			files: map[string]string{"a/c.yaml": cluster("same", "a.td"), "b/c.yaml": cluster("same", "b.td")},
			err:   `cluster "same" is defined in both`,
		},
		{
			name:  "a bad Cluster is reported with its file and field",
			files: map[string]string{"a/c.yaml": cluster("a", "Not A Domain")},
			err:   "c.yaml:1: Cluster a: spec.trustDomain:",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			lay, err := readLayout(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range lay.clusters {
				names = append(names, c.cluster.Name)
				if filepath.Base(c.dir) != c.cluster.Name {
					t.Errorf("cluster %s from folder %s", c.cluster.Name, c.dir)
				}
			}
			if !slices.Equal(names, tc.clusters) {
				t.Errorf("clusters %v, want %v", names, tc.clusters)
			}
			var links []string
			for _, l := range lay.links {
				links = append(links, l.name+":"+strings.Join(l.clusters, ","))
			}
			if !slices.Equal(links, tc.links) {
				t.Errorf("links %v, want %v", links, tc.links)
			}
			if len(lay.warnings) != len(tc.warnings) {
				t.Fatalf("warnings %q, want %q", lay.warnings, tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(lay.warnings[i], w) {
					t.Errorf("warning %q, want one containing %q", lay.warnings[i], w)
				}
			}
		})
	}
}
