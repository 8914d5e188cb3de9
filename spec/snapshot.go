package spec

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Input is everything adapters translated, in any order.
type Input struct {
	TrustDomain string
	Mode        Mode // "" means ModeStrict
	Services    []Service
	Routes      []Route
	Splits      []Split
	Policies    []AccessPolicy
	Links       []Link
}

// Add appends another fragment's objects to in.
func (in *Input) Add(f Input) {
	if f.TrustDomain != "" {
		in.TrustDomain = f.TrustDomain
	}
	if f.Mode != "" {
		in.Mode = f.Mode
	}
	in.Services = append(in.Services, f.Services...)
	in.Routes = append(in.Routes, f.Routes...)
	in.Splits = append(in.Splits, f.Splits...)
	in.Policies = append(in.Policies, f.Policies...)
	in.Links = append(in.Links, f.Links...)
}

// BuildOptions tune Build.
type BuildOptions struct {
	// Strict makes references to objects that are not among the inputs errors
	// instead of warnings. Off by default because such objects may live in the
	// cluster rather than in the files given.
	Strict bool
}

// Build validates, merges and orders the input into a Snapshot. The snapshot
// it returns is always consistent: an object with a dangling reference is
// trimmed or left out, and the diagnostics say which. When the diagnostics
// hold an error the caller must not publish the snapshot (the last good one
// keeps serving); it is returned so tools can still show what would be built.
func Build(in Input, opts BuildOptions) (*Snapshot, Diagnostics) {
	b := builder{opts: opts}
	s := &Snapshot{TrustDomain: in.TrustDomain, Mode: cmp.Or(in.Mode, ModeStrict)}
	if s.Mode != ModeStrict && s.Mode != ModePermissive {
		b.diags.Errorf(Source{}, Object{}, "mode", "unknown mode %q (want strict or permissive)", s.Mode)
		s.Mode = ModeStrict
	}
	if s.TrustDomain != "" {
		if _, err := spiffeid.TrustDomainFromString(s.TrustDomain); err != nil {
			b.diags.Errorf(Source{}, Object{}, "trustDomain", "%v", err)
		}
	}
	s.Services = b.services(in.Services)
	s.Routes = b.routes(in.Routes)
	s.Splits = b.splits(in.Splits, s)
	s.Policies = b.policies(in.Policies, s)
	s.Links = b.links(in.Links)
	s.Version = s.hash()
	b.diags.Sort()
	return s, b.diags
}

type builder struct {
	opts  BuildOptions
	diags Diagnostics
}

func (b *builder) errorf(o Origin, field, format string, args ...any) {
	b.diags.Errorf(o.Source, o.Object, o.Field(field), format, args...)
}

func (b *builder) warnf(o Origin, field, format string, args ...any) {
	b.diags.Warnf(o.Source, o.Object, o.Field(field), format, args...)
}

// missingf reports a reference to an object that is not among the inputs.
func (b *builder) missingf(o Origin, field, format string, args ...any) {
	if b.opts.Strict {
		b.errorf(o, field, format, args...)
	} else {
		b.warnf(o, field, format, args...)
	}
}

func joinField(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	default:
		return a + "." + b
	}
}

func validKey(k Key) error {
	if k.Name == "" {
		return fmt.Errorf("name is empty")
	}
	if k.Namespace == "" {
		return fmt.Errorf("namespace is empty")
	}
	return nil
}

func (b *builder) services(in []Service) []Service {
	out := make([]Service, 0, len(in))
	in = dedupe(b, "Service", in, func(s *Service) string { return s.Key.String() }, func(s *Service) Origin { return s.Origin })
	for _, svc := range in {
		o := svc.Origin
		if err := validKey(svc.Key); err != nil {
			b.errorf(o, "metadata", "%v", err)
			continue
		}
		svc.Ports = slices.Clone(svc.Ports)
		ports := map[int32]bool{}
		for i, p := range svc.Ports {
			f := fmt.Sprintf("spec.ports[%d]", i)
			if p.Port < 1 || p.Port > 65535 {
				b.errorf(o, f+".port", "port %d out of range 1-65535", p.Port)
			}
			if p.TargetPort < 0 || p.TargetPort > 65535 {
				b.errorf(o, f+".targetPort", "port %d out of range 1-65535", p.TargetPort)
			}
			if !p.Protocol.Valid() {
				b.errorf(o, f+".protocol", "unknown protocol %q", p.Protocol)
			}
			if ports[p.Port] {
				b.errorf(o, f+".port", "duplicate port %d", p.Port)
			}
			ports[p.Port] = true
		}
		slices.SortFunc(svc.Ports, func(a, c Port) int { return cmp.Compare(a.Port, c.Port) })
		svc.Identities = sortedIDs(svc.Identities)
		svc.Endpoints = slices.Clone(svc.Endpoints)
		for i, ep := range svc.Endpoints {
			if ep.Port < 1 || ep.Port > 65535 {
				b.errorf(o, fmt.Sprintf("endpoints[%d].port", i), "port %d out of range 1-65535", ep.Port)
			}
			if ep.Priority < 0 {
				b.errorf(o, fmt.Sprintf("endpoints[%d].priority", i), "priority %d is negative (0 is preferred)", ep.Priority)
			}
		}
		// Priority sorts last so that of two entries for one address the
		// preferred one survives the compaction below.
		slices.SortFunc(svc.Endpoints, func(a, c Endpoint) int {
			return cmp.Or(strings.Compare(a.Addr, c.Addr), cmp.Compare(a.Port, c.Port), cmp.Compare(a.ServicePort, c.ServicePort), cmp.Compare(a.Priority, c.Priority))
		})
		svc.Endpoints = slices.CompactFunc(svc.Endpoints, func(a, c Endpoint) bool {
			return a.Addr == c.Addr && a.Port == c.Port && a.ServicePort == c.ServicePort
		})
		out = append(out, svc)
	}
	slices.SortFunc(out, func(a, c Service) int { return compareKey(a.Key, c.Key) })
	return out
}

var httpMethods = map[string]bool{
	"*": true, "GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true,
}

func (b *builder) routes(in []Route) []Route {
	out := make([]Route, 0, len(in))
	in = dedupe(b, "route", in, func(r *Route) string { return string(r.Kind) + " " + r.Key.String() }, func(r *Route) Origin { return r.Origin })
	for _, r := range in {
		o := r.Origin
		if err := validKey(r.Key); err != nil {
			b.errorf(o, "metadata", "%v", err)
			continue
		}
		switch r.Kind {
		case RouteHTTP, RouteTCP, RouteUDP:
		default:
			b.errorf(o, "kind", "unknown route kind %q", r.Kind)
			continue
		}
		ok := true
		names := map[string]bool{}
		for i, m := range r.Matches {
			f := fmt.Sprintf("spec.matches[%d]", i)
			if m.Name == "" {
				b.errorf(o, f+".name", "match has no name")
				ok = false
			} else if names[m.Name] {
				b.errorf(o, f+".name", "duplicate match name %q", m.Name)
				ok = false
			}
			names[m.Name] = true
			if _, err := compilePath(m.PathRegex); err != nil {
				b.errorf(o, f+".pathRegex", "invalid regex %q: %v", m.PathRegex, regexErr(err))
				ok = false
			}
			for j, meth := range m.Methods {
				if !httpMethods[meth] {
					b.errorf(o, fmt.Sprintf("%s.methods[%d]", f, j), "unknown HTTP method %q", meth)
					ok = false
				}
			}
			for _, h := range sortedKeys(m.Headers) {
				if h == "" {
					b.errorf(o, f+".headers", "empty header name")
					ok = false
				}
				if _, err := compileHeader(m.Headers[h]); err != nil {
					b.errorf(o, f+".headers."+h, "invalid regex %q: %v", m.Headers[h], regexErr(err))
					ok = false
				}
			}
		}
		for i, p := range r.Ports {
			if p < 1 || p > 65535 {
				b.errorf(o, fmt.Sprintf("spec.matches.ports[%d]", i), "port %d out of range 1-65535", p)
				ok = false
			}
		}
		if !ok {
			continue
		}
		r.Matches = slices.Clone(r.Matches)
		r.Ports = sortedPorts(r.Ports)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, c Route) int {
		return cmp.Or(strings.Compare(string(a.Kind), string(c.Kind)), compareKey(a.Key, c.Key))
	})
	return out
}

// regexErr trims the regexp package's message down to the reason.
func regexErr(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return string(se.Code)
	}
	return err.Error()
}

// resolveRef checks a RouteRef against the snapshot's routes. It returns false
// when the ref must be dropped.
func (b *builder) resolveRef(s *Snapshot, o Origin, field string, ref *RouteRef) bool {
	r := s.route(ref.Kind, ref.Key)
	if r == nil {
		b.missingf(o, field, "%s route %s not found", ref.Kind, ref.Key)
		return false
	}
	if len(ref.Matches) == 0 {
		return true
	}
	kept := ref.Matches[:0:0]
	for i, name := range ref.Matches {
		if r.match(name) == nil {
			b.missingf(o, fmt.Sprintf("%s.matches[%d]", field, i), "match %q not found in %s route %s", name, ref.Kind, ref.Key)
			continue
		}
		kept = append(kept, name)
	}
	if len(kept) == 0 {
		return false
	}
	slices.Sort(kept)
	ref.Matches = slices.Compact(kept)
	return true
}

func (b *builder) splits(in []Split, s *Snapshot) []Split {
	out := make([]Split, 0, len(in))
	in = dedupe(b, "TrafficSplit", in, func(s *Split) string { return s.Key.String() }, func(s *Split) Origin { return s.Origin })
	for _, sp := range in {
		o := sp.Origin
		if err := validKey(sp.Key); err != nil {
			b.errorf(o, "metadata", "%v", err)
			continue
		}
		root := s.Service(sp.Root)
		if root == nil {
			b.missingf(o, "spec.service", "root service %s not found", sp.Root)
			continue
		}
		var backends []Backend
		var total int64
		for i, be := range sp.Backends {
			f := fmt.Sprintf("spec.backends[%d]", i)
			if be.Weight < 0 {
				b.errorf(o, f+".weight", "must be >= 0, got %s", FormatWeight(be.Weight))
				continue
			}
			svc := s.Service(be.Service)
			if svc == nil {
				b.missingf(o, f+".service", "backend service %s not found", be.Service)
				continue
			}
			if missing := missingPorts(root, svc); len(missing) > 0 {
				b.warnf(o, f+".service", "backend %s lacks root service port(s) %v; backend dropped", be.Service, missing)
				continue
			}
			if slices.ContainsFunc(backends, func(x Backend) bool { return x.Service == be.Service }) {
				b.errorf(o, f+".service", "backend %s listed twice", be.Service)
				continue
			}
			backends = append(backends, be)
			total += be.Weight
		}
		if len(backends) == 0 {
			b.errorf(o, "spec.backends", "no usable backend")
			continue
		}
		if total == 0 {
			b.errorf(o, "spec.backends", "all backend weights are zero")
			continue
		}
		var refs []RouteRef
		for i, ref := range sp.Matches {
			ref.Matches = slices.Clone(ref.Matches)
			if b.resolveRef(s, o, fmt.Sprintf("spec.matches[%d]", i), &ref) {
				refs = append(refs, ref)
			}
		}
		if len(sp.Matches) > 0 && len(refs) == 0 {
			b.missingf(o, "spec.matches", "none of the referenced routes exist; split left out")
			continue
		}
		sp.Backends, sp.Matches = backends, refs
		out = append(out, sp)
	}
	slices.SortFunc(out, func(a, c Split) int { return compareKey(a.Key, c.Key) })
	// Nesting: a backend that is itself the root of a split is not split again
	// (one level of weights keeps the arithmetic visible), and two splits of the
	// same root without matches cannot both decide unmatched traffic.
	roots := map[Key]Key{}
	for _, sp := range out {
		if len(sp.Matches) == 0 {
			if first, dup := roots[sp.Root]; dup {
				b.errorf(sp.Origin, "spec.service", "root service %s is already split by %s; only one TrafficSplit without matches may split a service", sp.Root, first)
			} else {
				roots[sp.Root] = sp.Key
			}
		}
	}
	isRoot := map[Key]bool{}
	for _, sp := range out {
		isRoot[sp.Root] = true
	}
	for _, sp := range out {
		for i, be := range sp.Backends {
			if be.Service == sp.Root {
				b.warnf(sp.Origin, fmt.Sprintf("spec.backends[%d].service", i), "backend is the root service itself; its share goes to the root's own endpoints")
			} else if isRoot[be.Service] {
				b.warnf(sp.Origin, fmt.Sprintf("spec.backends[%d].service", i), "backend %s is itself split; nested splits are not followed, its own endpoints are used", be.Service)
			}
		}
	}
	return out
}

// dedupe keeps one object per key: the one from the latest source (file, then
// document, then line), which is what `kubectl apply -f DIR` leaves in a
// cluster when two files define the same object. Each object it drops is
// reported where it was written: a warning when a later source overrides it,
// an error when Strict is set or when the two cannot be told apart by source
// (then the content decides, so the result never depends on input order).
func dedupe[T any](b *builder, kind string, in []T, key func(*T) string, origin func(*T) Origin) []T {
	type entry struct {
		key, hash string
		src       Source
		i         int
	}
	entries := make([]entry, len(in))
	dups := false
	seen := make(map[string]bool, len(in))
	for i := range in {
		k := key(&in[i])
		dups = dups || seen[k]
		seen[k] = true
		entries[i] = entry{key: k, src: origin(&in[i]).Source, i: i}
	}
	if !dups {
		return in
	}
	for i := range entries {
		entries[i].hash = contentHash(in[entries[i].i])
	}
	slices.SortStableFunc(entries, func(a, c entry) int {
		return cmp.Or(strings.Compare(a.key, c.key), strings.Compare(a.src.File, c.src.File),
			cmp.Compare(a.src.Document, c.src.Document), cmp.Compare(a.src.Line, c.src.Line), strings.Compare(a.hash, c.hash))
	})
	out := make([]T, 0, len(seen))
	for i, e := range entries {
		if i+1 < len(entries) && entries[i+1].key == e.key {
			next := entries[i+1]
			o := origin(&in[e.i])
			where := next.src.File
			if where == "" {
				where = "another input"
			}
			if next.src.Document != e.src.Document || next.src.File != e.src.File {
				where += fmt.Sprintf(" (document %d)", next.src.Document)
			}
			name := kind + " " + e.key
			if o.Object.Kind != "" {
				name = o.Object.String()
			}
			if b.opts.Strict || next.src == e.src {
				b.errorf(o, "metadata.name", "duplicate %s: also defined in %s", name, where)
			} else {
				b.warnf(o, "metadata.name", "duplicate %s: overridden by %s, as kubectl apply would", name, where)
			}
			continue
		}
		out = append(out, in[e.i])
	}
	return out
}

func missingPorts(root, backend *Service) []int32 {
	var missing []int32
	for _, p := range root.Ports {
		if _, ok := backend.Port(p.Port); !ok {
			missing = append(missing, p.Port)
		}
	}
	return missing
}

func (b *builder) policies(in []AccessPolicy, s *Snapshot) []AccessPolicy {
	out := make([]AccessPolicy, 0, len(in))
	in = dedupe(b, "TrafficTarget", in, func(p *AccessPolicy) string { return p.Key.String() }, func(p *AccessPolicy) Origin { return p.Origin })
	for _, p := range in {
		o := p.Origin
		if err := validKey(p.Key); err != nil {
			b.errorf(o, "metadata", "%v", err)
			continue
		}
		if p.Destination.IsZero() {
			b.errorf(o, "spec.destination", "destination identity is empty")
			continue
		}
		if len(p.Sources) == 0 {
			b.warnf(o, "spec.sources", "no sources: this TrafficTarget allows nobody")
		}
		if len(p.Rules) == 0 {
			b.warnf(o, "spec.rules", "no rules: this TrafficTarget allows nothing")
		}
		var rules []AccessRule
		for i, r := range p.Rules {
			r.Route.Matches = slices.Clone(r.Route.Matches)
			if !b.resolveRef(s, o, fmt.Sprintf("spec.rules[%d]", i), &r.Route) {
				continue
			}
			r.Ports = sortedPorts(r.Ports)
			rules = append(rules, r)
		}
		p.Sources = sortedIDs(p.Sources)
		p.Rules = rules
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, c AccessPolicy) int { return compareKey(a.Key, c.Key) })
	return out
}

func (b *builder) links(in []Link) []Link {
	out := make([]Link, 0, len(in))
	seen := map[string]bool{}
	for i, l := range in {
		o := Origin{Object: Object{Kind: "Link", Name: l.Cluster}}
		if l.Cluster == "" {
			b.errorf(o, fmt.Sprintf("links[%d].cluster", i), "cluster name is empty")
			continue
		}
		if seen[l.Cluster] {
			b.errorf(o, "cluster", "duplicate link to cluster %q", l.Cluster)
			continue
		}
		seen[l.Cluster] = true
		if _, err := spiffeid.TrustDomainFromString(l.TrustDomain); err != nil {
			b.errorf(o, "trustDomain", "%v", err)
			continue
		}
		l.ControlAddrs = slices.Sorted(slices.Values(l.ControlAddrs))
		l.GatewayAddrs = slices.Sorted(slices.Values(l.GatewayAddrs))
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, c Link) int { return strings.Compare(a.Cluster, c.Cluster) })
	return out
}

// Service returns the service with key k, or nil.
func (s *Snapshot) Service(k Key) *Service {
	i, ok := slices.BinarySearchFunc(s.Services, k, func(svc Service, k Key) int { return compareKey(svc.Key, k) })
	if !ok {
		return nil
	}
	return &s.Services[i]
}

func (s *Snapshot) route(kind RouteKind, k Key) *Route {
	for i := range s.Routes {
		if s.Routes[i].Kind == kind && s.Routes[i].Key == k {
			return &s.Routes[i]
		}
	}
	return nil
}

func (r *Route) match(name string) *Match {
	for i := range r.Matches {
		if r.Matches[i].Name == name {
			return &r.Matches[i]
		}
	}
	return nil
}

// JSON is the snapshot's canonical serialisation: the same snapshot always
// gives the same bytes.
func (s *Snapshot) JSON() []byte {
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		// Every field is a plain value; marshalling cannot fail.
		panic(fmt.Sprintf("spec: marshal snapshot: %v", err))
	}
	return append(out, '\n')
}

func (s *Snapshot) hash() string {
	c := *s
	c.Version = ""
	return contentHash(&c)
}

func contentHash(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("spec: marshal for hash: %v", err))
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:12])
}

func compareKey(a, b Key) int {
	return cmp.Or(strings.Compare(a.Cluster, b.Cluster), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

func sortedIDs(ids []spiffeid.ID) []spiffeid.ID {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b spiffeid.ID) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(out)
}

func sortedPorts(ps []int32) []int32 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

// FormatWeight renders a weight in thousandths as a decimal ("0.5", "50").
func FormatWeight(w int64) string {
	sign := ""
	if w < 0 {
		sign, w = "-", -w
	}
	if w%1000 == 0 {
		return fmt.Sprintf("%s%d", sign, w/1000)
	}
	return sign + strings.TrimRight(fmt.Sprintf("%d.%03d", w/1000, w%1000), "0")
}
