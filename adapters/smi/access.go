package smi

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/causeway-mesh/causeway/spec"
)

// subject is a TrafficTarget destination or source before resolution.
type subject struct {
	field                        string
	kind, group, name, namespace string
}

// ruleIn is a TrafficTarget rule (v1alpha1: a "specs" entry).
type ruleIn struct {
	field   string
	kind    string
	name    string
	matches []string
}

func targetV1alpha1(d *doc) {
	var tt accessv1alpha1.TrafficTarget
	if !d.decode(&tt) {
		return
	}
	// v1alpha1 keeps its fields at the top level and calls rules "specs".
	dest := subject{field: "destination", kind: tt.Destination.Kind, name: tt.Destination.Name, namespace: tt.Destination.Namespace}
	var srcs []subject
	for i, s := range tt.Sources {
		srcs = append(srcs, subject{field: fmt.Sprintf("sources[%d]", i), kind: s.Kind, name: s.Name, namespace: s.Namespace})
	}
	var rules []ruleIn
	for i, r := range tt.Specs {
		rules = append(rules, ruleIn{field: fmt.Sprintf("specs[%d]", i), kind: r.Kind, name: r.Name, matches: r.Matches})
	}
	var ports []int32
	if tt.Destination.Port != 0 { // int, not *int, in v1alpha1: 0 is "unset"
		ports = d.port("destination.port", tt.Destination.Port)
	}
	d.target(dest, srcs, rules, ports)
}

func targetV1alpha2(d *doc) {
	var tt accessv1alpha2.TrafficTarget
	if !d.decode(&tt) {
		return
	}
	s := tt.Spec
	dest := subject{field: "spec.destination", kind: s.Destination.Kind, name: s.Destination.Name, namespace: s.Destination.Namespace}
	var srcs []subject
	for i, x := range s.Sources {
		srcs = append(srcs, subject{field: fmt.Sprintf("spec.sources[%d]", i), kind: x.Kind, name: x.Name, namespace: x.Namespace})
	}
	var ports []int32
	if s.Destination.Port != nil {
		ports = d.port("spec.destination.port", *s.Destination.Port)
	}
	rules := make([]accessv1alpha3.TrafficTargetRule, len(s.Rules))
	for i, r := range s.Rules {
		rules[i] = accessv1alpha3.TrafficTargetRule(r)
	}
	d.target(dest, srcs, rulesOf(rules), ports)
}

func targetV1alpha3(d *doc) {
	ports := d.leftoverPort()
	var tt accessv1alpha3.TrafficTarget
	if !d.decode(&tt) {
		return
	}
	s := tt.Spec
	dest := subject{field: "spec.destination", kind: s.Destination.Kind, name: s.Destination.Name, namespace: s.Destination.Namespace}
	var srcs []subject
	for i, x := range s.Sources {
		srcs = append(srcs, subject{field: fmt.Sprintf("spec.sources[%d]", i), kind: x.Kind, name: x.Name, namespace: x.Namespace})
	}
	d.target(dest, srcs, rulesOf(s.Rules), ports)
}

func rulesOf(rs []accessv1alpha3.TrafficTargetRule) []ruleIn {
	out := make([]ruleIn, len(rs))
	for i, r := range rs {
		out[i] = ruleIn{field: fmt.Sprintf("spec.rules[%d]", i), kind: r.Kind, name: r.Name, matches: r.Matches}
	}
	return out
}

// leftoverPort accepts the known slip of a v1alpha3 TrafficTarget that still
// carries v1alpha2's destination.port (the conformance suite has port:
// "9091"). It is honoured as v1alpha2 did, narrowing the rules to that port:
// with deny by default, reading less access than written is the safe side.
func (d *doc) leftoverPort() []int32 {
	dest, ok := lookup(d.tree, "spec", "destination")
	if !ok {
		return nil
	}
	m, ok := dest.(map[string]any)
	if !ok {
		return nil
	}
	v, ok := m["port"]
	if !ok {
		return nil
	}
	delete(m, "port")
	const f = "spec.destination.port"
	var n int64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = strconv.ParseInt(x.String(), 10, 32)
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 32)
	default:
		err = fmt.Errorf("got %s", describe(v))
	}
	if err != nil {
		d.errorf(f, "port (removed in v1alpha3) must be a port number: %v", err)
		return nil
	}
	ports := d.port(f, int(n))
	if ports != nil {
		d.warnf(f, "port was removed in v1alpha3 (known slip); read as in v1alpha2: the rules allow port %d only", n)
	}
	return ports
}

func (d *doc) port(field string, p int) []int32 {
	if p < 1 || p > 65535 {
		d.errorf(field, "port %d out of range 1-65535", p)
		return nil
	}
	return []int32{int32(p)}
}

// target builds the canonical AccessPolicy. Rules keep their SMI order so
// Build's diagnostics (missing routes, "spec.rules[1]") point at the right
// entry; a policy without sources or rules is reported by Build, once.
func (d *doc) target(dest subject, srcs []subject, rules []ruleIn, ports []int32) {
	p := spec.AccessPolicy{Key: d.key(d.o.Name), Origin: d.origin()}
	if d.o.Version() == "v1alpha1" {
		// v1alpha1 keeps its fields at the top level and calls rules "specs":
		// Build's diagnostics should name the fields the user wrote.
		p.Origin.Aliases = map[string]string{"spec.rules": "specs", "spec.sources": "sources", "spec.destination": "destination"}
	}
	ids := d.identities(dest)
	switch {
	case len(ids) == 1:
		p.Destination = ids[0]
	case len(ids) > 1:
		d.errorf(dest.field, "destination %s/%s stands for %d identities; a TrafficTarget protects one (use an IdentityBinding with one identity)", dest.namespace, dest.name, len(ids))
	}
	tds := d.sourceTrustDomains()
	for _, s := range srcs {
		ids := d.identities(s)
		p.Sources = append(p.Sources, ids...)
		if s.kind != "ServiceAccount" {
			continue // an IdentityBinding names whole SPIFFE IDs, trust domain included
		}
		for _, id := range ids {
			for _, td := range tds {
				if other, err := spiffeid.FromPath(td, id.Path()); err == nil && !slices.Contains(p.Sources, other) {
					p.Sources = append(p.Sources, other)
				}
			}
		}
	}
	for _, r := range rules {
		ref, ok := d.ruleRef(r)
		if ok {
			p.Rules = append(p.Rules, spec.AccessRule{Route: ref, Ports: ports})
		}
	}
	if d.failed || p.Destination.IsZero() {
		return
	}
	d.t.in.Policies = append(d.t.in.Policies, p)
}

// ruleKinds lists the route kinds a TrafficTarget rule may name, per
// version: UDPRoute arrived with specs v1alpha4, which access v1alpha3 uses.
var ruleKinds = map[string]map[string]spec.RouteKind{
	"v1alpha1": {"HTTPRouteGroup": spec.RouteHTTP, "TCPRoute": spec.RouteTCP},
	"v1alpha2": {"HTTPRouteGroup": spec.RouteHTTP, "TCPRoute": spec.RouteTCP},
	"v1alpha3": {"HTTPRouteGroup": spec.RouteHTTP, "TCPRoute": spec.RouteTCP, "UDPRoute": spec.RouteUDP},
	"v1alpha4": {"HTTPRouteGroup": spec.RouteHTTP, "TCPRoute": spec.RouteTCP, "UDPRoute": spec.RouteUDP},
}

func (d *doc) ruleRef(r ruleIn) (spec.RouteRef, bool) {
	kinds := ruleKinds[d.o.Version()]
	kind, ok := kinds[r.kind]
	if !ok {
		d.errorf(r.field+".kind", "kind %q cannot be a rule of TrafficTarget %s (want one of: %s)", r.kind, d.o.Version(), strings.Join(sortedKeys(kinds), ", "))
		return spec.RouteRef{}, false
	}
	if r.name == "" {
		d.errorf(r.field+".name", "required")
		return spec.RouteRef{}, false
	}
	ref := spec.RouteRef{Kind: kind, Key: d.key(r.name)}
	if kind == spec.RouteHTTP {
		// No matches means every match of the group (spec: "a OR relationship").
		ref.Matches = r.matches
	} else if len(r.matches) > 0 {
		d.warnf(r.field+".matches", "%s has no named matches; matches ignored, the rule allows the whole route", r.kind)
	}
	return ref, true
}

// identities resolves a destination or source to SPIFFE IDs.
func (d *doc) identities(s subject) []spiffeid.ID {
	ns := s.namespace
	if ns == "" {
		ns = d.o.Namespace
	}
	if s.name == "" {
		d.errorf(s.field+".name", "required")
		return nil
	}
	switch s.kind {
	case "ServiceAccount":
		if s.group != "" {
			d.errorf(s.field+".group", "ServiceAccount is in the core group, not %q", s.group)
			return nil
		}
		// Checked as Kubernetes would, so that a name the API server refuses
		// is not turned into an identity nobody can hold.
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			d.errorf(s.field+".namespace", "namespace %q: %s", ns, strings.Join(errs, "; "))
			return nil
		}
		if errs := validation.IsDNS1123Subdomain(s.name); len(errs) > 0 {
			d.errorf(s.field+".name", "service account name %q: %s", s.name, strings.Join(errs, "; "))
			return nil
		}
		id, err := spec.Identity(d.t.opts.TrustDomain, ns, s.name)
		if err != nil {
			d.errorf(s.field, "ServiceAccount %s/%s has no valid SPIFFE ID: %v", ns, s.name, err)
			return nil
		}
		return []spiffeid.ID{id}
	case "IdentityBinding":
		if d.o.Version() != "v1alpha4" {
			break
		}
		if s.group != "" && s.group != GroupAccess {
			d.errorf(s.field+".group", "IdentityBinding is in %s, not %q", GroupAccess, s.group)
			return nil
		}
		k := spec.Key{Namespace: ns, Name: s.name}
		b := d.t.bindings[k]
		if b == nil {
			d.strictf(s.field, "IdentityBinding %s not found among the inputs; left out", k)
			return nil
		}
		return b.ids
	}
	want := "ServiceAccount"
	if d.o.Version() == "v1alpha4" {
		want = "ServiceAccount or IdentityBinding"
	}
	d.errorf(s.field+".kind", "kind %q cannot name an identity (want %s)", s.kind, want)
	return nil
}
