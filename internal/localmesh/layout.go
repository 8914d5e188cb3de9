package localmesh

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/spec"
)

// layout is what a folder given to `causeway up` holds: either one mesh
// (no cluster subfolders), or one cluster per subfolder plus the links
// between them (DESIGN.md §8).
type layout struct {
	clusters []layoutCluster // empty: a single-cluster folder
	links    []linkSpec
	warnings []string
}

type layoutCluster struct {
	dir     string // the subfolder, as the user's path spells it
	cluster local.Cluster
}

// linkSpec is one ClusterLink: every pair of its clusters is linked.
type linkSpec struct {
	name     string
	clusters []string
	where    string // FILE:LINE: ClusterLink name, for messages
}

// readLayout finds the cluster subfolders of dir: those holding a Cluster
// object (exactly one). ClusterLinks are read from the files directly in
// dir and from every cluster subfolder. The clusters are fixed for the run;
// the links follow edits (followLinks reads the layout again).
func readLayout(dir string) (layout, error) {
	var lay layout
	entries, err := os.ReadDir(dir)
	if err != nil {
		return lay, err
	}
	var top []string // manifest files directly in dir
	for _, e := range entries {
		if hidden(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if !e.IsDir() {
			if manifest.IsManifestName(p) {
				top = append(top, p)
			}
			continue
		}
		files, err := manifest.Files([]string{p})
		if err != nil {
			continue // a subfolder without manifests is not a cluster
		}
		objs, _, err := manifest.Read(files, nil)
		if err != nil {
			return lay, err
		}
		if !slices.ContainsFunc(objs, isCluster) {
			continue
		}
		res, diags := local.Decode(objs, local.Options{})
		if len(res.Clusters) != 1 {
			var why []string
			for _, d := range diags.Errors() {
				if d.Object.Kind == "Cluster" {
					why = append(why, d.String())
				}
			}
			if len(why) == 0 {
				why = append(why, fmt.Sprintf("%d Cluster objects; a cluster subfolder holds exactly one", len(res.Clusters)))
			}
			return lay, fmt.Errorf("cluster folder %s:\n  %s", p, strings.Join(why, "\n  "))
		}
		for _, other := range lay.clusters {
			if other.cluster.Name == res.Clusters[0].Name {
				return lay, fmt.Errorf("cluster %q is defined in both %s and %s", other.cluster.Name, other.dir, p)
			}
		}
		lay.clusters = append(lay.clusters, layoutCluster{dir: p, cluster: res.Clusters[0]})
		lay.addLinks(res.ClusterLinks)
	}
	if len(lay.clusters) == 0 {
		return layout{}, nil
	}
	objs, _, err := manifest.Read(top, nil)
	if err != nil {
		return lay, err
	}
	res, _ := local.Decode(objs, local.Options{})
	lay.addLinks(res.ClusterLinks)
	for _, o := range objs {
		if !(local.Handles(&o) && o.Kind == "ClusterLink") {
			lay.warnings = append(lay.warnings, fmt.Sprintf("%s: %s: warning: not read: in a folder of clusters the top level holds only ClusterLinks; put it in a cluster's subfolder",
				where(o.Source), o.SpecObject()))
		}
	}
	names := make([]string, len(lay.clusters))
	for i, c := range lay.clusters {
		names[i] = c.cluster.Name
	}
	lay.links = slices.DeleteFunc(lay.links, func(l linkSpec) bool {
		for _, c := range l.clusters {
			if !slices.Contains(names, c) {
				lay.warnings = append(lay.warnings, fmt.Sprintf("%s: warning: cluster %q is not one of this folder's clusters (%s); link not made", l.where, c, strings.Join(names, ", ")))
				return true
			}
		}
		return false
	})
	return lay, nil
}

func isCluster(o adapters.Object) bool { return local.Handles(&o) && o.Kind == "Cluster" }

func (lay *layout) addLinks(ls []local.ClusterLink) {
	for _, l := range ls {
		if slices.ContainsFunc(lay.links, func(x linkSpec) bool { return x.name == l.Name }) {
			continue
		}
		lay.links = append(lay.links, linkSpec{name: l.Name, clusters: l.Clusters,
			where: fmt.Sprintf("%s: ClusterLink %s", where(l.Origin.Source), l.Name)})
	}
}

// hidden reports dot-files (.file.yaml.swp, .#file) that editors create
// beside the file being edited, and backup files.
func hidden(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, ".") || strings.HasSuffix(base, "~")
}

// where renders a source as diagnostics do: FILE:LINE.
func where(src spec.Source) string {
	if src.Line > 0 {
		return fmt.Sprintf("%s:%d", src.File, src.Line)
	}
	return src.File
}
