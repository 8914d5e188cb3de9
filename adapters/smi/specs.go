package smi

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	specsv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha1"
	specsv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha2"
	specsv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/causeway-mesh/causeway/spec"
)

// httpMatch is the part of an SMI HTTPMatch every version shares. Headers are
// read apart from the SDK types (see takeHeaders).
type httpMatch struct {
	name, pathRegex string
	methods         []string
}

func httpRouteGroup(d *doc) {
	matchesField := "spec.matches"
	writtenAt := "" // where the user wrote the matches, when not matchesField
	switch d.o.Version() {
	case "v1alpha1", "v1alpha2":
		// Before v1alpha3 matches sat at the top level, beside metadata.
		matchesField = "matches"
	default:
		_, slipped := d.tree["matches"]
		if !d.moveTopLevelMatches() {
			return
		}
		if slipped {
			writtenAt = "matches"
		}
	}
	headers := d.takeHeaders(matchesField)
	var matches []httpMatch
	switch d.o.Version() {
	case "v1alpha1":
		var g specsv1alpha1.HTTPRouteGroup
		if !d.decode(&g) {
			return
		}
		for _, m := range g.Matches {
			matches = append(matches, httpMatch{m.Name, m.PathRegex, m.Methods})
		}
	case "v1alpha2":
		var g specsv1alpha2.HTTPRouteGroup
		if !d.decode(&g) {
			return
		}
		for _, m := range g.Matches {
			matches = append(matches, httpMatch{m.Name, m.PathRegex, m.Methods})
		}
	case "v1alpha3":
		var g specsv1alpha3.HTTPRouteGroup
		if !d.decode(&g) {
			return
		}
		for _, m := range g.Spec.Matches {
			matches = append(matches, httpMatch{m.Name, m.PathRegex, m.Methods})
		}
	case "v1alpha4":
		var g specsv1alpha4.HTTPRouteGroup
		if !d.decode(&g) {
			return
		}
		for _, m := range g.Spec.Matches {
			matches = append(matches, httpMatch{m.Name, m.PathRegex, m.Methods})
		}
	}
	r := spec.Route{Key: d.key(d.o.Name), Kind: spec.RouteHTTP, Origin: d.origin()}
	if matchesField != "spec.matches" || writtenAt != "" {
		r.Origin.Aliases = map[string]string{"spec.matches": cmp.Or(writtenAt, matchesField)}
	}
	for i, m := range matches {
		f := fmt.Sprintf("%s[%d]", matchesField, i)
		if m.pathRegex != "" {
			// Checked here, not only in Build, so the error carries the SMI
			// path (the top-level slip, list-form headers) and the route is
			// left out before Build reports it a second time.
			if err := checkRegex(m.pathRegex, "^(?:%s)"); err != nil {
				d.errorf(f+".pathRegex", "invalid regex %q: %v", m.pathRegex, err)
			}
		}
		var h map[string]string
		if i < len(headers) {
			h = d.headers(f+".headers", headers[i])
		}
		r.Matches = append(r.Matches, spec.Match{Name: m.name, PathRegex: m.pathRegex, Methods: m.methods, Headers: h})
	}
	if !d.failed {
		d.t.in.Routes = append(d.t.in.Routes, r)
	}
}

// moveTopLevelMatches accepts the known slip of a v1alpha3+ HTTPRouteGroup
// with matches beside metadata instead of under spec (upstream examples and
// the conformance suite have it), moving them under spec with a warning.
func (d *doc) moveTopLevelMatches() bool {
	m, ok := d.tree["matches"]
	if !ok {
		return true
	}
	if _, both := lookup(d.tree, "spec", "matches"); both {
		d.errorf("matches", "matches is given both at the top level and under spec; keep only spec.matches")
		return false
	}
	specObj, ok := d.tree["spec"].(map[string]any)
	if !ok {
		if d.tree["spec"] != nil {
			return true // the decoder reports spec's wrong type and top-level matches as unknown
		}
		specObj = map[string]any{}
		d.tree["spec"] = specObj
	}
	d.warnf("matches", "matches belongs under spec in %s (known slip); read as spec.matches", d.o.APIVersion)
	specObj["matches"] = m
	delete(d.tree, "matches")
	d.rename = [2]string{"spec.matches", "matches"}
	return true
}

// takeHeaders removes the headers of every match from the tree and returns
// them by match index. The SDK types know only the map form (and v1alpha1
// none at all), while the CRDs and real manifests (osm-demo) use a list of
// single-key maps; both forms are read by headers.
func (d *doc) takeHeaders(matchesField string) []any {
	path := strings.Split(matchesField, ".")
	v, ok := lookup(d.tree, path...)
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil // the decoder reports the wrong type
	}
	out := make([]any, len(list))
	for i, m := range list {
		if mm, ok := m.(map[string]any); ok {
			out[i] = mm["headers"]
			delete(mm, "headers")
		}
	}
	return out
}

// headers reads a match's headers: a map of header name to regex, or a list
// of single-key maps. Names are compared without case, as HTTP does.
func (d *doc) headers(field string, v any) map[string]string {
	if v == nil {
		return nil
	}
	out := map[string]string{}
	seen := map[string]string{} // lower-case name -> field that set it
	add := func(f, name string, val any) {
		if name == "" {
			d.errorf(f, "empty header name")
			return
		}
		var re string
		switch x := val.(type) {
		case string:
			re = x
		case json.Number, bool:
			// YAML reads `x-debug: 1` as a number; smi-controller-sdk's
			// sample has it. The intent is plain.
			re = fmt.Sprint(x)
			d.warnf(f, "header value is a %s; read as the regex %q (quote it in YAML)", strings.Fields(describe(val))[0], re)
		default:
			d.errorf(f, "wrong type: got %s, want a string (a regex)", describe(val))
			return
		}
		if prev, dup := seen[strings.ToLower(name)]; dup {
			d.errorf(f, "header %q is already matched at %s; put both conditions in one regex", name, prev)
			return
		}
		seen[strings.ToLower(name)] = f
		if err := checkRegex(re, "^(?:%s)$"); err != nil {
			d.errorf(f, "invalid regex %q: %v", re, err)
		}
		out[name] = re
	}
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			add(joinPath(field, k), k, x[k])
		}
	case []any:
		for i, item := range x {
			f := fmt.Sprintf("%s[%d]", field, i)
			m, ok := item.(map[string]any)
			if !ok {
				d.errorf(f, "wrong type: got %s, want a single-key map such as {user-agent: \".*Firefox.*\"}", describe(item))
				continue
			}
			for _, k := range sortedKeys(m) {
				add(joinPath(f, k), k, m[k])
			}
		}
	default:
		d.errorf(field, "wrong type: got %s, want a map of header name to regex, or a list of single-key maps", describe(v))
	}
	return out
}

// checkRegex reports why re is not a valid RE2 regex, both alone and inside
// the anchoring wrapper spec/ compiles it with.
func checkRegex(re, wrapper string) error {
	if _, err := syntax.Parse(re, syntax.Perl); err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return fmt.Errorf("%s: %q", se.Code, se.Expr)
		}
		return err
	}
	if _, err := regexp.Compile(fmt.Sprintf(wrapper, re)); err != nil {
		return err
	}
	return nil
}

func tcpRouteV1alpha1(d *doc) {
	var r specsv1alpha1.TCPRoute
	if d.decode(&r) {
		d.l4Route(spec.RouteTCP, nil)
	}
}

func tcpRouteV1alpha2(d *doc) {
	var r specsv1alpha2.TCPRoute
	if d.decode(&r) {
		d.l4Route(spec.RouteTCP, nil)
	}
}

func tcpRouteV1alpha3(d *doc) {
	var r specsv1alpha3.TCPRoute
	if d.decode(&r) {
		d.l4Route(spec.RouteTCP, nil)
	}
}

// l4RouteV1alpha4 reads TCPRoute and UDPRoute v1alpha4, which share a shape:
// spec.matches.ports, empty meaning every port.
func l4RouteV1alpha4(d *doc) {
	if d.o.Kind == "UDPRoute" {
		var r specsv1alpha4.UDPRoute
		if d.decode(&r) {
			d.l4Route(spec.RouteUDP, r.Spec.Matches.Ports)
		}
		return
	}
	var r specsv1alpha4.TCPRoute
	if d.decode(&r) {
		d.l4Route(spec.RouteTCP, r.Spec.Matches.Ports)
	}
}

// l4Route emits a TCP or UDP route. Ports are checked here because the SDK
// reads them as int and the model keeps int32: a port of 4294967376 must not
// wrap round to 80 before Build can see it.
func (d *doc) l4Route(kind spec.RouteKind, ports []int) {
	r := spec.Route{Key: d.key(d.o.Name), Kind: kind, Origin: d.origin()}
	for i, p := range ports {
		if p < 1 || p > 65535 {
			d.errorf(fmt.Sprintf("spec.matches.ports[%d]", i), "port %d out of range 1-65535", p)
			continue
		}
		r.Ports = append(r.Ports, int32(p))
	}
	if !d.failed {
		d.t.in.Routes = append(d.t.in.Routes, r)
	}
}
