package gatewayapi

import (
	"fmt"
	"slices"

	"github.com/causeway-mesh/causeway/spec"
)

// Plan is what the TrafficSplits rooted at one service decide, in the
// order Causeway's own proxies apply them (spec.Compile): HTTP matches of
// splits with matches first, then the split without matches for the rest,
// else the root service itself (DESIGN §3: unmatched requests go to the
// root). Istio and Gateway API renderings both read it.
type Plan struct {
	Root *spec.Service
	// HTTP lists, per split with HTTP matches and per route it references,
	// the matches selected.
	HTTP []MatchedSplit
	// Default takes what no match took; nil means the root service itself.
	Default *spec.Split
	// L4 maps each TCP or UDP port of the root to the split deciding it: a
	// split whose TCPRoute/UDPRoute covers the port, else Default. Ports
	// absent are not split.
	L4 map[int32]*spec.Split
}

// MatchedSplit is one route reference of a split with matches.
type MatchedSplit struct {
	Split   *spec.Split
	Route   *spec.Route
	Matches []spec.Match
	// Field is the reference's field in the TrafficSplit.
	Field string
}

// Split reports whether anything of the root is split.
func (p *Plan) Split() bool {
	return len(p.HTTP) > 0 || p.Default != nil || len(p.L4) > 0
}

// Plans returns one Plan per local service that is the root of a split,
// ordered by service key.
func Plans(s *spec.Snapshot) []Plan {
	var out []Plan
	for i := range s.Services {
		svc := &s.Services[i]
		if svc.Key.Cluster != "" {
			continue // imported: its own cluster splits it
		}
		p := Plan{Root: svc, L4: map[int32]*spec.Split{}}
		var l4 []*spec.Split
		for j := range s.Splits {
			sp := &s.Splits[j]
			if sp.Root != svc.Key {
				continue
			}
			if len(sp.Matches) == 0 {
				p.Default = sp // spec.Build keeps at most one per root
				continue
			}
			for k, ref := range sp.Matches {
				r := Lookup(s, ref.Kind, ref.Key)
				if r == nil {
					continue // spec.Build resolved every reference
				}
				if ref.Kind == spec.RouteHTTP {
					p.HTTP = append(p.HTTP, MatchedSplit{Split: sp, Route: r, Matches: SelectMatches(r, ref.Matches), Field: fmt.Sprintf("spec.matches[%d]", k)})
				} else if !slices.Contains(l4, sp) {
					l4 = append(l4, sp)
				}
			}
		}
		for _, port := range svc.Ports {
			var kind spec.RouteKind
			switch port.Protocol {
			case spec.ProtocolTCP:
				kind = spec.RouteTCP
			case spec.ProtocolUDP:
				kind = spec.RouteUDP
			default:
				continue
			}
			// The first split (by key) whose route covers the port decides,
			// as the first matching UpstreamRoute does in the proxy.
			for _, sp := range l4 {
				if coversPort(s, sp, kind, port.Port) {
					p.L4[port.Port] = sp
					break
				}
			}
			if p.L4[port.Port] == nil && p.Default != nil {
				p.L4[port.Port] = p.Default
			}
			if p.L4[port.Port] == nil {
				delete(p.L4, port.Port)
			}
		}
		if p.Split() {
			out = append(out, p)
		}
	}
	return out
}

func coversPort(s *spec.Snapshot, sp *spec.Split, kind spec.RouteKind, port int32) bool {
	for _, ref := range sp.Matches {
		if ref.Kind != kind {
			continue
		}
		if r := Lookup(s, kind, ref.Key); r != nil && (len(r.Ports) == 0 || slices.Contains(r.Ports, port)) {
			return true
		}
	}
	return false
}

// Backends returns a split's backends, or the root alone (weight 1) for nil.
func Backends(sp *spec.Split, root spec.Key) []spec.Backend {
	if sp == nil {
		return []spec.Backend{{Service: root, Weight: 1000}}
	}
	return sp.Backends
}

// MatchIndex is the position of a match in its route, for field paths.
func MatchIndex(r *spec.Route, name string) int {
	return slices.IndexFunc(r.Matches, func(m spec.Match) bool { return m.Name == name })
}
