package spec

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// AnchorRegex anchors re as SMI means it: at the start of the path
// (DESIGN §3), and with whole at the end too (header values). re is
// wrapped as written when that parses; a pattern whose meaning does not
// survive being put inside a group (an unterminated \Q quote swallows the
// closing parenthesis) is parsed and printed back first. Either way the
// result reads the same in any RE2 engine (Envoy, Istio, Gateway API
// implementations). The error is re's own parse error.
func AnchorRegex(re string, whole bool) (string, error) {
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return "", err
	}
	end := ")"
	if whole {
		end = ")$"
	}
	if _, err := syntax.Parse("^(?:"+re+end, syntax.Perl); err == nil && !strings.Contains(re, `\Q`) {
		return "^(?:" + re + end, nil
	}
	return "^(?:" + parsed.String() + end, nil
}

// compilePath anchors an SMI pathRegex at the start of the path (DESIGN §3):
// "/books" matches "/books-bought" but not "/x/books".
func compilePath(re string) (*regexp.Regexp, error) {
	if re == "" {
		return nil, nil
	}
	a, err := AnchorRegex(re, false)
	if err != nil {
		return nil, err
	}
	return regexp.Compile(a)
}

// compileHeader makes a header regex match the whole value, as Envoy's
// safe_regex header matcher (which SMI implementations translate to) does.
func compileHeader(re string) (*regexp.Regexp, error) {
	a, err := AnchorRegex(re, true)
	if err != nil {
		return nil, err
	}
	return regexp.Compile(a)
}

// HeaderGetter reads a request header; net/http's Header satisfies it.
type HeaderGetter interface {
	Get(name string) string
}

// Request is what routing and authorization look at in an HTTP request.
type Request struct {
	Method string
	Path   string
	Header HeaderGetter
}

type matcher struct {
	name       string
	path       *regexp.Regexp
	anyMethod  bool
	methods    []string
	headerName []string
	headerRe   []*regexp.Regexp
}

func newMatcher(m Match) (matcher, error) {
	mt := matcher{name: m.Name, anyMethod: len(m.Methods) == 0}
	var err error
	if mt.path, err = compilePath(m.PathRegex); err != nil {
		return mt, fmt.Errorf("match %q: pathRegex: %w", m.Name, err)
	}
	for _, meth := range m.Methods {
		if meth == "*" {
			mt.anyMethod = true
		}
		mt.methods = append(mt.methods, meth)
	}
	for _, h := range sortedKeys(m.Headers) {
		re, err := compileHeader(m.Headers[h])
		if err != nil {
			return mt, fmt.Errorf("match %q: headers.%s: %w", m.Name, h, err)
		}
		mt.headerName = append(mt.headerName, h)
		mt.headerRe = append(mt.headerRe, re)
	}
	return mt, nil
}

// matches reports whether every condition of the match holds (AND).
func (m *matcher) matches(r *Request) bool {
	if !m.anyMethod && !slices.Contains(m.methods, r.Method) {
		return false
	}
	if m.path != nil && !m.path.MatchString(r.Path) {
		return false
	}
	for i, name := range m.headerName {
		var v string
		if r.Header != nil {
			v = r.Header.Get(name)
		}
		if !m.headerRe[i].MatchString(v) {
			return false
		}
	}
	return true
}

func newMatchers(ms []Match) ([]matcher, error) {
	out := make([]matcher, 0, len(ms))
	for _, m := range ms {
		mt, err := newMatcher(m)
		if err != nil {
			return nil, err
		}
		out = append(out, mt)
	}
	return out, nil
}

// firstMatch returns the name of the first match that holds (OR), or "", false.
func firstMatch(ms []matcher, r *Request) (string, bool) {
	for i := range ms {
		if ms[i].matches(r) {
			return ms[i].name, true
		}
	}
	return "", false
}

// Table answers routing and authorization questions for one NodeConfig. It is
// immutable and safe for concurrent use; build a new one for a new config.
type Table struct {
	Config    *NodeConfig
	upstreams map[Key]*upstreamTable
	clusters  map[Key]*Cluster
	hosts     map[string]Key
	policies  []policyTable
}

type upstreamTable struct {
	up     *Upstream
	routes [][]matcher // parallel to up.Routes
}

type policyTable struct {
	p     *InboundPolicy
	rules [][]matcher // parallel to p.Rules
}

// Prepare compiles the config's matches into a Table. It fails only on a
// config that did not come from Build/Compile (a bad regex, say).
func (c *NodeConfig) Prepare() (*Table, error) {
	t := &Table{
		Config:    c,
		upstreams: make(map[Key]*upstreamTable, len(c.Upstreams)),
		clusters:  make(map[Key]*Cluster, len(c.Clusters)),
		hosts:     make(map[string]Key, 4*len(c.Upstreams)),
	}
	for i := range c.Clusters {
		t.clusters[c.Clusters[i].Service] = &c.Clusters[i]
	}
	for i := range c.Upstreams {
		up := &c.Upstreams[i]
		ut := &upstreamTable{up: up}
		for j, r := range up.Routes {
			ms, err := newMatchers(r.Matches)
			if err != nil {
				return nil, fmt.Errorf("upstream %s: routes[%d]: %w", up.Service, j, err)
			}
			ut.routes = append(ut.routes, ms)
		}
		t.upstreams[up.Service] = ut
		for _, h := range HostNames(up.Service, c.Node.Cluster) {
			t.hosts[h] = up.Service
		}
	}
	for i := range c.Inbound.Policies {
		p := &c.Inbound.Policies[i]
		pt := policyTable{p: p}
		for j, r := range p.Rules {
			ms, err := newMatchers(r.Matches)
			if err != nil {
				return nil, fmt.Errorf("policy %s: rules[%d]: %w", p.Key, j, err)
			}
			pt.rules = append(pt.rules, ms)
		}
		t.policies = append(t.policies, pt)
	}
	return t, nil
}

// HostNames lists the DNS names a service answers to, Kubernetes style:
// name.ns, name.ns.svc, name.ns.svc.cluster.local; a service of another
// cluster than the node's answers to name.ns.svc.<cluster> instead.
func HostNames(k Key, nodeCluster string) []string {
	base := k.Name + "." + k.Namespace
	if k.Cluster != nodeCluster && k.Cluster != "" {
		return []string{base + ".svc." + k.Cluster}
	}
	return []string{base, base + ".svc", base + ".svc.cluster.local"}
}

// Resolve maps a host (without port) to the service it names.
func (t *Table) Resolve(host string) (Key, bool) {
	k, ok := t.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]
	return k, ok
}

// Cluster returns the endpoints of a service, or nil.
func (t *Table) Cluster(k Key) *Cluster { return t.clusters[k] }

// Upstream returns the upstream for a service, or nil.
func (t *Table) Upstream(k Key) *Upstream {
	if ut := t.upstreams[k]; ut != nil {
		return ut.up
	}
	return nil
}

// RouteDecision says where traffic to a service goes.
type RouteDecision struct {
	Service Key
	// Route is the index in Upstream.Routes that matched, or -1 for Default.
	Route int
	// Match is the name of the HTTP match that held ("" for Default or L4).
	Match    string
	Backends []WeightedCluster
}

// RouteHTTP decides the backends of an HTTP request to svc. It returns false
// when the node has no such upstream.
func (t *Table) RouteHTTP(svc Key, r *Request) (RouteDecision, bool) {
	ut := t.upstreams[svc]
	if ut == nil {
		return RouteDecision{}, false
	}
	for i := range ut.up.Routes {
		ur := &ut.up.Routes[i]
		if ur.Kind != RouteHTTP {
			continue
		}
		if name, ok := firstMatch(ut.routes[i], r); ok {
			return RouteDecision{Service: svc, Route: i, Match: name, Backends: ur.Backends}, true
		}
	}
	return RouteDecision{Service: svc, Route: -1, Backends: ut.up.Default}, true
}

// RouteL4 decides the backends of a TCP or UDP flow to svc on port.
func (t *Table) RouteL4(svc Key, kind RouteKind, port int32) (RouteDecision, bool) {
	ut := t.upstreams[svc]
	if ut == nil {
		return RouteDecision{}, false
	}
	for i := range ut.up.Routes {
		ur := &ut.up.Routes[i]
		if ur.Kind == kind && portIn(ur.Ports, port) {
			return RouteDecision{Service: svc, Route: i, Backends: ur.Backends}, true
		}
	}
	return RouteDecision{Service: svc, Route: -1, Backends: ut.up.Default}, true
}

// portIn reports whether port is in ports, where empty means every port.
func portIn(ports []int32, port int32) bool {
	return len(ports) == 0 || slices.Contains(ports, port)
}

// AccessDecision says whether a caller may reach this node.
type AccessDecision struct {
	Allowed bool
	// Policy and Rule name what allowed it (Rule is an index in its Rules);
	// zero and -1 when nothing did or the mode is permissive.
	Policy Key
	Rule   int
	Match  string
	// Reason is a short human explanation, sent with a 403.
	Reason string
}

// Authorize decides whether caller may send r (nil for a TCP or UDP flow of
// the given kind) to this node on port. Access is denied by default in strict
// mode; every TrafficTarget only adds (SMI traffic-access).
func (t *Table) Authorize(caller spiffeid.ID, kind RouteKind, port int32, r *Request) AccessDecision {
	if t.Config.Mode == ModePermissive {
		return AccessDecision{Allowed: true, Rule: -1, Reason: "permissive mode"}
	}
	if caller.IsZero() {
		return AccessDecision{Rule: -1, Reason: "caller has no verified identity"}
	}
	for _, pt := range t.policies {
		if !slices.Contains(pt.p.Sources, caller) {
			continue
		}
		for i, rule := range pt.p.Rules {
			if !portIn(rule.Ports, port) {
				continue
			}
			switch {
			case rule.Kind == RouteHTTP && r != nil:
				if name, ok := firstMatch(pt.rules[i], r); ok {
					return AccessDecision{Allowed: true, Policy: pt.p.Key, Rule: i, Match: name, Reason: "allowed"}
				}
			case rule.Kind == RouteTCP && (kind == RouteTCP || r != nil):
				// A TCPRoute rule opens the port; HTTP on it is TCP too.
				return AccessDecision{Allowed: true, Policy: pt.p.Key, Rule: i, Reason: "allowed"}
			case rule.Kind == RouteUDP && kind == RouteUDP:
				return AccessDecision{Allowed: true, Policy: pt.p.Key, Rule: i, Reason: "allowed"}
			}
		}
	}
	return AccessDecision{Rule: -1, Reason: fmt.Sprintf("no TrafficTarget allows %s here", caller)}
}
