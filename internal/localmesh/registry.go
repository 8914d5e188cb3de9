package localmesh

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// ClusterInfo is one running cluster of a `causeway up`, as the run writes
// it to its run directory so that other commands (`causeway stat
// --cluster`) find its API without the user copying addresses.
type ClusterInfo struct {
	Name        string `json:"name"` // "" for a single-cluster folder
	TrustDomain string `json:"trustDomain"`
	REST        string `json:"rest"`
	Control     string `json:"control"`
	Gateway     string `json:"gateway,omitempty"`
	Federation  string `json:"federation,omitempty"`
	Dir         string `json:"dir"`
}

const registryFile = "clusters.json"

func (m *Mesh) writeRegistry() error {
	var infos []ClusterInfo
	for _, c := range m.clusters {
		info := ClusterInfo{Name: c.name, TrustDomain: c.td.Name(), REST: c.restAddr, Control: c.grpcAddr, Dir: c.absDir}
		if c.gateway != nil {
			info.Gateway, info.Federation = c.gateway.listen, c.fedAddr
		}
		infos = append(infos, info)
	}
	data, err := json.MarshalIndent(infos, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(m.runDir, registryFile), data, 0o600)
}

// FindCluster returns the cluster called name of the `causeway up` runs
// alive on this machine (their run directories under the temporary
// directory). It is an error when none or several runs have one.
func FindCluster(name string) (ClusterInfo, error) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), runDirPrefix+"*"))
	var found []ClusterInfo
	var names []string
	for _, d := range dirs {
		if pid, ok := runDirOwner(d); !ok || !alive(pid) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(d, registryFile))
		if err != nil {
			continue
		}
		var infos []ClusterInfo
		if json.Unmarshal(data, &infos) != nil {
			continue
		}
		for _, in := range infos {
			if in.Name == name {
				found = append(found, in)
			} else if in.Name != "" {
				names = append(names, in.Name)
			}
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		slices.Sort(names)
		if len(names) == 0 {
			return ClusterInfo{}, fmt.Errorf("no cluster %q: no multi-cluster `causeway up` is running", name)
		}
		return ClusterInfo{}, fmt.Errorf("no cluster %q among the running ones (%s)", name, strings.Join(slices.Compact(names), ", "))
	}
	return ClusterInfo{}, fmt.Errorf("%d running `causeway up` have a cluster %q; use --api", len(found), name)
}
