package routecheck

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/causeway-mesh/causeway/spec"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"sigs.k8s.io/yaml"
)

// File is a cases file.
type File struct {
	Tests []Case `json:"tests"`
}

// Case is one request and what must happen to it.
type Case struct {
	Name string `json:"name"`
	// Caller is a SPIFFE ID, or "ns/serviceaccount" in the snapshot's trust
	// domain; empty means a caller without identity.
	Caller string `json:"caller,omitempty"`
	// Service is "ns/name" or a host name such as name.ns.svc.cluster.local.
	Service string `json:"service"`
	// Port selects the service port; 0 means the service's first port.
	Port    int32             `json:"port,omitempty"`
	Method  string            `json:"method,omitempty"`
	Path    string            `json:"path,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Expect  Expect            `json:"expect"`
}

// Expect is what a case checks; leave a field out to not check it.
type Expect struct {
	// Backend is the one service all traffic must go to ("ns/name").
	Backend string `json:"backend,omitempty"`
	// Backends maps "ns/name" to the share in percent (relative weights are
	// normalised; a share is equal when it is within 0.01 %).
	Backends map[string]float64 `json:"backends,omitempty"`
	// Access is "allow" or "deny", checked at every backend the request may
	// reach (a request may land on any of them).
	Access string `json:"access,omitempty"`
}

// Parse reads a cases file, rejecting unknown fields.
func Parse(data []byte) (*File, error) {
	var f File
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, err
	}
	for i, c := range f.Tests {
		field := fmt.Sprintf("tests[%d]", i)
		if c.Name == "" {
			return nil, fmt.Errorf("%s.name: required", field)
		}
		if c.Service == "" {
			return nil, fmt.Errorf("%s (%s).service: required", field, c.Name)
		}
		if c.Expect.Backend == "" && c.Expect.Backends == nil && c.Expect.Access == "" {
			return nil, fmt.Errorf("%s (%s).expect: nothing to check; set backend, backends or access", field, c.Name)
		}
		if c.Expect.Backend != "" && c.Expect.Backends != nil {
			return nil, fmt.Errorf("%s (%s).expect: set backend or backends, not both", field, c.Name)
		}
		if a := c.Expect.Access; a != "" && a != "allow" && a != "deny" {
			return nil, fmt.Errorf("%s (%s).expect.access: %q, want allow or deny", field, c.Name, a)
		}
	}
	return &f, nil
}

// Result is one case's outcome.
type Result struct {
	Name     string   `json:"name"`
	Passed   bool     `json:"passed"`
	Failures []string `json:"failures,omitempty"`
}

// Coverage counts what the cases exercised, per kind of item.
type Coverage struct {
	RouteMatches  Count `json:"routeMatches"`
	SplitBackends Count `json:"splitBackends"`
	AccessRules   Count `json:"accessRules"`
	// Missed lists the items no case exercised, sorted.
	Missed []string `json:"missed,omitempty"`
}

// Count is exercised items out of all items.
type Count struct {
	Hit   int `json:"hit"`
	Total int `json:"total"`
}

// Percent is the overall share of exercised items; 100 when there are none.
func (c Coverage) Percent() float64 {
	hit := c.RouteMatches.Hit + c.SplitBackends.Hit + c.AccessRules.Hit
	total := c.RouteMatches.Total + c.SplitBackends.Total + c.AccessRules.Total
	if total == 0 {
		return 100
	}
	return 100 * float64(hit) / float64(total)
}

// Report is the outcome of a run.
type Report struct {
	Results  []Result `json:"results"`
	Coverage Coverage `json:"coverage"`
}

// Failed counts the failed cases.
func (r *Report) Failed() int {
	n := 0
	for _, res := range r.Results {
		if !res.Passed {
			n++
		}
	}
	return n
}

// Run checks every case against the snapshot.
func Run(s *spec.Snapshot, f *File) (*Report, error) {
	r := &runner{snap: s, tables: map[spiffeid.ID]*spec.Table{}, hit: map[string]bool{}}
	var err error
	// Routing is the same for every caller in a cluster: one table serves.
	if r.client, err = spec.Compile(s, spec.Node{ID: "routecheck"}).Prepare(); err != nil {
		return nil, err
	}
	rep := &Report{}
	for _, c := range f.Tests {
		rep.Results = append(rep.Results, r.run(c))
	}
	rep.Coverage = r.coverage()
	return rep, nil
}

type runner struct {
	snap   *spec.Snapshot
	client *spec.Table
	tables map[spiffeid.ID]*spec.Table // per destination identity
	hit    map[string]bool
}

func (r *runner) run(c Case) Result {
	res := Result{Name: c.Name}
	fail := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	svcKey, ok := r.resolve(c.Service)
	if !ok {
		fail("service %q not found", c.Service)
		return res
	}
	svc := r.snap.Service(svcKey)
	port := c.Port
	if port == 0 && len(svc.Ports) > 0 {
		port = svc.Ports[0].Port
	}
	p, ok := svc.Port(port)
	if !ok {
		fail("service %s has no port %d", svcKey, port)
		return res
	}
	var req *spec.Request
	var d spec.RouteDecision
	if p.Protocol.IsHTTP() {
		h := http.Header{}
		for k, v := range c.Headers {
			h.Set(k, v)
		}
		req = &spec.Request{Method: strings.ToUpper(cmpOr(c.Method, "GET")), Path: cmpOr(c.Path, "/"), Header: h}
		d, _ = r.client.RouteHTTP(svcKey, req)
	} else {
		d, _ = r.client.RouteL4(svcKey, spec.RouteKind(p.Protocol), port)
	}
	r.noteRoute(svcKey, d)

	got := shares(d.Backends)
	switch {
	case c.Expect.Backend != "":
		want := map[string]float64{c.Expect.Backend: 100}
		if !sameShares(got, want) {
			fail("backends %s, want all to %s", formatShares(got), c.Expect.Backend)
		}
	case c.Expect.Backends != nil:
		if !sameShares(got, normalise(c.Expect.Backends)) {
			fail("backends %s, want %s", formatShares(got), formatShares(normalise(c.Expect.Backends)))
		}
	}
	if c.Expect.Access != "" {
		caller, err := r.caller(c.Caller)
		if err != nil {
			fail("caller: %v", err)
			return res
		}
		kind := spec.RouteHTTP
		if req == nil {
			kind = spec.RouteKind(p.Protocol)
		}
		for _, b := range d.Backends {
			if b.Weight == 0 {
				continue
			}
			for _, dest := range r.destinations(b.Service) {
				dec := r.table(dest).Authorize(caller, kind, port, req)
				r.noteAccess(dec)
				if got := verdict(dec.Allowed); got != c.Expect.Access {
					fail("%s at %s (%s): %s (%s), want %s", got, b.Service, dest, got, dec.Reason, c.Expect.Access)
				}
			}
		}
	}
	res.Passed = len(res.Failures) == 0
	return res
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func verdict(allowed bool) string {
	if allowed {
		return "allow"
	}
	return "deny"
}

func (r *runner) resolve(s string) (spec.Key, bool) {
	if ns, name, ok := strings.Cut(s, "/"); ok {
		k := spec.Key{Namespace: ns, Name: name}
		return k, r.snap.Service(k) != nil
	}
	return r.client.Resolve(s)
}

func (r *runner) caller(s string) (spiffeid.ID, error) {
	switch {
	case s == "":
		return spiffeid.ID{}, nil
	case strings.HasPrefix(s, "spiffe://"):
		return spiffeid.FromString(s)
	}
	ns, sa, ok := strings.Cut(s, "/")
	if !ok {
		return spiffeid.ID{}, fmt.Errorf("%q: want a SPIFFE ID or ns/serviceaccount", s)
	}
	return spec.Identity(cmpOr(r.snap.TrustDomain, "cluster.local"), ns, sa)
}

// destinations are the identities whose proxies decide access for a service;
// a service without identities is not meshed, and its zero ID denies in
// strict mode just as a proxy without policies would.
func (r *runner) destinations(k spec.Key) []spiffeid.ID {
	if svc := r.snap.Service(k); svc != nil && len(svc.Identities) > 0 {
		return svc.Identities
	}
	return []spiffeid.ID{{}}
}

func (r *runner) table(id spiffeid.ID) *spec.Table {
	if t, ok := r.tables[id]; ok {
		return t
	}
	t, err := spec.Compile(r.snap, spec.Node{ID: "routecheck-" + id.String(), Identity: id}).Prepare()
	if err != nil {
		// Prepare fails only on a snapshot Build did not produce; the client
		// table prepared the same matches already.
		panic(fmt.Sprintf("routecheck: prepare %s: %v", id, err))
	}
	r.tables[id] = t
	return t
}

func shares(bs []spec.WeightedCluster) map[string]float64 {
	w := map[string]float64{}
	for _, b := range bs {
		w[b.Service.String()] += float64(b.Weight)
	}
	return normalise(w)
}

func normalise(w map[string]float64) map[string]float64 {
	var total float64
	for _, v := range w {
		total += v
	}
	out := map[string]float64{}
	for k, v := range w {
		if v > 0 && total > 0 {
			out[k] = 100 * v / total
		}
	}
	return out
}

func sameShares(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || abs(v-w) > 0.01 {
			return false
		}
	}
	return true
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func formatShares(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.4g%%", k, m[k])
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// Coverage items are named "<kind> <object> <detail>" so Missed sorts by kind.
func matchItem(route spec.Key, match string) string {
	return "route match " + route.String() + "#" + match
}
func backendItem(split, svc spec.Key) string {
	return "split backend " + split.String() + " -> " + svc.String()
}
func ruleItem(policy spec.Key, i int) string {
	return fmt.Sprintf("access rule %s.rules[%d]", policy, i)
}

func (r *runner) noteRoute(svc spec.Key, d spec.RouteDecision) {
	up := r.client.Upstream(svc)
	if d.Route >= 0 && d.Match != "" {
		r.hit[matchItem(up.Routes[d.Route].Route, d.Match)] = true
	}
	for _, b := range d.Backends {
		if b.Weight > 0 && b.Split != (spec.Key{}) {
			r.hit[backendItem(b.Split, b.Service)] = true
		}
	}
}

func (r *runner) noteAccess(d spec.AccessDecision) {
	if !d.Allowed || d.Rule < 0 {
		return
	}
	r.hit[ruleItem(d.Policy, d.Rule)] = true
	// The rule's route match counts as exercised too.
	for _, p := range r.snap.Policies {
		if p.Key == d.Policy && d.Match != "" {
			r.hit[matchItem(p.Rules[d.Rule].Route.Key, d.Match)] = true
		}
	}
}

func (r *runner) coverage() Coverage {
	var c Coverage
	count := func(n *Count, item string) {
		n.Total++
		if r.hit[item] {
			n.Hit++
		} else {
			c.Missed = append(c.Missed, item)
		}
	}
	for _, rt := range r.snap.Routes {
		if rt.Kind != spec.RouteHTTP {
			continue
		}
		for _, m := range rt.Matches {
			count(&c.RouteMatches, matchItem(rt.Key, m.Name))
		}
	}
	for _, sp := range r.snap.Splits {
		for _, b := range sp.Backends {
			if b.Weight == 0 {
				continue // no request can reach it; not a gap in the cases
			}
			count(&c.SplitBackends, backendItem(sp.Key, b.Service))
		}
	}
	for _, p := range r.snap.Policies {
		for i := range p.Rules {
			count(&c.AccessRules, ruleItem(p.Key, i))
		}
	}
	slices.Sort(c.Missed)
	return c
}
