package localmesh

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/causeway-mesh/causeway/spec"
)

// summary prints what runs where, once, after the first good snapshot.
func (c *cluster) summary(snap *spec.Snapshot) {
	c.m.outMu.Lock()
	defer c.m.outMu.Unlock()
	out := c.m.opts.Out
	if c.name == "" {
		fmt.Fprintf(out, "causeway up: %s (trust domain %s, mode %s, snapshot %s)\n", c.dir, c.td.Name(), snap.Mode, short(snap.Version))
	} else {
		fmt.Fprintf(out, "causeway up: cluster %s from %s (trust domain %s, mode %s, snapshot %s)\n", c.name, c.dir, c.td.Name(), snap.Mode, short(snap.Version))
	}
	fmt.Fprintf(out, "  control plane  grpc %s (mTLS, SPIFFE ID %s)\n", c.grpcAddr, c.ctlID)
	stat := "--api " + c.restAddr
	if c.name != "" {
		stat = "--cluster " + c.name
	}
	fmt.Fprintf(out, "  REST API       http://%s  (causeway stat %s)\n", c.restAddr, stat)
	fmt.Fprintf(out, "  Workload API   unix://%s\n", c.sock)
	insts := make([]*instance, 0, len(c.instances))
	for _, inst := range c.instances {
		insts = append(insts, inst)
	}
	slices.SortFunc(insts, func(a, b *instance) int { return cmp.Compare(a.w.Key.String(), b.w.Key.String()) })
	tw := tabwriter.NewWriter(out, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "  WORKLOAD\tSERVICE\tAPP\tSIDECAR INBOUND\tADMIN\tHTTP_PROXY\tUPSTREAMS\tPIDS")
	for _, inst := range insts {
		w := inst.w
		svc, app, hp := "-", "-", "-"
		if w.Service != "" {
			svc, app = w.ServiceKey().String(), strconv.Itoa(int(w.Port))
		}
		if w.Outbound.HTTPProxyPort != 0 {
			hp = "127.0.0.1:" + strconv.Itoa(int(w.Outbound.HTTPProxyPort))
		}
		var ups []string
		for _, u := range w.Outbound.Upstreams {
			ups = append(ups, fmt.Sprintf("%s:%d@%d", u.Service, u.Port, u.LocalPort))
		}
		pids := strconv.Itoa(inst.sidecar.pid())
		if inst.app != nil {
			pids += "," + strconv.Itoa(inst.app.pid())
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w.Key, svc, app, inst.inboundAddr(), inst.adminAddr(), hp,
			cmp.Or(strings.Join(ups, ","), "-"), pids)
	}
	tw.Flush()
	if c.name == "" {
		fmt.Fprintf(out, "causeway up: ready: %d workloads; edit the files in %s to change the mesh; Ctrl-C stops everything\n", len(insts), c.dir)
	}
}
