package localmesh

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/causeway-mesh/causeway/adapters/local"
	"github.com/causeway-mesh/causeway/adapters/manifest"
	"github.com/causeway-mesh/causeway/adapters/pipeline"
	"github.com/causeway-mesh/causeway/internal/loopback"
	"github.com/causeway-mesh/causeway/spec"
)

// portBook hands out free loopback ports for the sidecars' inbound and
// admin listeners. The inbound port of a workload stays the same for the
// whole run: it is in the snapshot, and a reload must not move it.
type portBook struct {
	mu      sync.Mutex
	used    map[int32]bool
	inbound map[spec.Key]int32
}

func newPortBook() *portBook {
	return &portBook{used: map[int32]bool{}, inbound: map[spec.Key]int32{}}
}

// free returns a free loopback port never handed out before in this run.
// It comes from loopback.FreePorts, below the kernel's ephemeral range, so
// between this call and the sidecar's bind no outgoing connection can take
// it; if something else does, the sidecar's start fails loudly.
func (b *portBook) free() (int32, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for range 20 {
		ps, err := loopback.FreePorts(1)
		if err != nil {
			return 0, err
		}
		if p := int32(ps[0]); !b.used[p] {
			b.used[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free loopback port")
}

func (b *portBook) inboundPort(k spec.Key) (int32, error) {
	b.mu.Lock()
	p, ok := b.inbound[k]
	b.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := b.free()
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	b.inbound[k] = p
	b.mu.Unlock()
	return p, nil
}

// load is the folder's loader: the pipeline's translation plus what the
// Workloads mean (local.Attach) plus the services imported from linked
// clusters, then spec.Build. The local-mode result is kept for publish,
// which runs next on the same goroutine.
func (c *cluster) load(dir string) (*spec.Snapshot, spec.Diagnostics, error) {
	objs, diags, err := manifest.Read([]string{dir}, nil)
	if err != nil {
		return nil, nil, err
	}
	td := c.td.Name()
	// Diagnostics of the local kinds come from the pipeline's registry
	// entry; Decode is asked again only for the typed result.
	res, _ := local.Decode(objs, local.Options{TrustDomain: td})
	in, d, _ := pipeline.Translate(objs, pipeline.Options{TrustDomain: td})
	diags = append(diags, d...)
	if res.Mesh != nil && res.TrustDomain(td) != td {
		o := res.Mesh.Origin
		diags.Errorf(o.Source, o.Object, "spec.trustDomain", "the running mesh's trust domain is %s; changing it needs a restart of causeway up", td)
	}
	if c.def != nil {
		diags = append(diags, c.checkCluster(res.Clusters)...)
	}
	var portErr error
	diags = append(diags, local.Attach(&in, res.Workloads, func(w *local.Workload) (string, int32) {
		p, err := c.m.ports.inboundPort(spec.Key{Cluster: c.name, Namespace: w.Key.Namespace, Name: w.Key.Name})
		if err != nil {
			portErr = err
		}
		return "127.0.0.1", p
	})...)
	if portErr != nil {
		return nil, nil, portErr
	}
	// Imports are Services like any other (named <name>-<cluster>, DESIGN.md
	// §7) and the peers' Links: a TrafficSplit here may name one as a
	// backend. spec.BuildWithImports takes only those, never a local name.
	var imp spec.Input
	if c.fed != nil {
		imp = c.fed.Imports()
	}
	snap, d := spec.BuildWithImports(in, imp, spec.BuildOptions{})
	diags = append(diags, d...)
	diags.Sort()
	c.pending = &res
	return snap, diags, nil
}

// checkCluster reports an edit of the running cluster's Cluster object that
// only a restart could apply: its CA, ports and links were made from it.
func (c *cluster) checkCluster(cs []local.Cluster) spec.Diagnostics {
	var diags spec.Diagnostics
	if len(cs) != 1 {
		diags.Errorf(spec.Source{File: c.dir}, spec.Object{Kind: "Cluster", Name: c.name}, "", "a cluster folder holds exactly one Cluster, found %d", len(cs))
		return diags
	}
	got, run := cs[0], *c.def
	o := got.Origin
	for _, f := range []struct {
		field      string
		have, want any
	}{
		{"spec.name", got.Name, run.Name},
		{"spec.trustDomain", got.TrustDomain, run.TrustDomain},
		{"spec.gatewayPort", got.GatewayPort, run.GatewayPort},
		{"spec.adminPort", got.AdminPort, run.AdminPort},
	} {
		if f.have != f.want {
			diags.Errorf(o.Source, o.Object, f.field, "the running cluster has %v; changing it needs a restart of causeway up", f.want)
		}
	}
	return diags
}

// publish hands the load to the control plane and, when it was accepted,
// tells federation what this cluster exports, makes the running processes
// match the Workloads and says what changed.
func (c *cluster) publish(snap *spec.Snapshot, diags spec.Diagnostics) bool {
	res := c.pending
	c.pending = nil
	now := time.Now().Format("15:04:05")
	if !c.srv.Publish(snap, diags) {
		serving := "nothing is served yet"
		if c.lastSnap != nil {
			serving = "still serving " + short(c.lastSnap.Version)
		}
		errs := diags.Errors()
		c.printf("%s rejected: %d error(s); nothing changed, %s", now, len(errs), serving)
		for _, d := range errs {
			c.printf("  %s", d)
		}
		return false
	}
	if c.fed != nil {
		c.fed.SetLocal(snap)
	}
	changes := describeChanges(c.lastSnap, snap)
	first := c.lastSnap == nil
	c.lastSnap = snap
	if !first && len(changes) > 0 {
		c.printf("%s applied %s: %s", now, short(snap.Version), strings.Join(changes, "; "))
	}
	if res != nil {
		c.reconcile(*res)
	}
	if !c.started {
		c.started = true
		for _, d := range diags {
			c.printf("  %s%s", d, c.importHint(d))
		}
		c.summary(snap)
		c.markReady()
	}
	return true
}

func short(v string) string {
	if len(v) > 12 {
		return v[:12]
	}
	return v
}

// describeChanges names what differs between two snapshots, one phrase per
// object, with a TrafficSplit's new weights spelt out.
func describeChanges(old, cur *spec.Snapshot) []string {
	if old == nil {
		return nil
	}
	var out []string
	if old.Mode != cur.Mode {
		out = append(out, fmt.Sprintf("mode %s -> %s", old.Mode, cur.Mode))
	}
	out = append(out, diffObjects("Service", old.Services, cur.Services, func(s spec.Service) spec.Key { return s.Key }, nil)...)
	out = append(out, diffObjects("route", old.Routes, cur.Routes, func(r spec.Route) spec.Key { return r.Key }, nil)...)
	out = append(out, diffObjects("TrafficSplit", old.Splits, cur.Splits, func(s spec.Split) spec.Key { return s.Key }, func(s spec.Split) string {
		var ws []string
		for _, b := range s.Backends {
			ws = append(ws, b.Service.Name+"="+spec.FormatWeight(b.Weight))
		}
		return " (" + strings.Join(ws, " ") + ")"
	})...)
	out = append(out, diffObjects("TrafficTarget", old.Policies, cur.Policies, func(p spec.AccessPolicy) spec.Key { return p.Key }, nil)...)
	return out
}

func diffObjects[T any](kind string, old, cur []T, key func(T) spec.Key, detail func(T) string) []string {
	om := map[spec.Key]T{}
	for _, o := range old {
		om[key(o)] = o
	}
	var out []string
	seen := map[spec.Key]bool{}
	for _, c := range cur {
		k := key(c)
		seen[k] = true
		o, had := om[k]
		d := ""
		if detail != nil {
			d = detail(c)
		}
		switch {
		case !had:
			out = append(out, "added "+kind+" "+k.String()+d)
		case !sameJSON(o, c):
			out = append(out, "changed "+kind+" "+k.String()+d)
		}
	}
	for _, o := range old {
		if k := key(o); !seen[k] {
			out = append(out, "removed "+kind+" "+k.String())
		}
	}
	slices.Sort(out)
	return out
}

// sameJSON compares model objects as they are served: Origin (where in the
// files an object was written) is not part of them, so moving a document
// within a file is not a change.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// importHint explains a first load's warning about a service that a linked
// cluster will export: imports arrive only once the link is made.
func (c *cluster) importHint(d spec.Diagnostic) string {
	if d.Severity != spec.SeverityWarning {
		return ""
	}
	for _, peer := range c.m.peers(c.name) {
		if strings.Contains(d.Message, "-"+peer+" not found") {
			return " (yet: an import of cluster " + peer + ", there once the clusters are linked)"
		}
	}
	return ""
}
