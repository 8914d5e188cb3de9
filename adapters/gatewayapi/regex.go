package gatewayapi

import (
	"regexp/syntax"
	"slices"
	"strings"
)

// Form is one string a regex reduces to, for targets whose matchers have no
// regexes (Istio's AuthorizationPolicy) or are clearer without one.
type Form struct {
	Value string
	// Exact: the whole value must equal Value. Otherwise Value is a plain
	// string prefix (not Gateway API's path-element PathPrefix).
	Exact bool
	// Suffix: the value must end with Value (headers only: ".*abc").
	Suffix bool
}

// maxForms bounds the expansion of alternations and character classes; a
// regex that needs more is reported as not expressible.
const maxForms = 32

type state uint8

const (
	building state = iota // more may follow
	open                  // ".*" seen: anything may follow
	ended                 // "$" seen: nothing may follow
)

type piece struct {
	s  string
	st state
}

// PathForms reduces an SMI pathRegex, which is anchored at the start of the
// path only (DESIGN §3), to the exact paths and string prefixes it matches.
// It returns ok=false when the regex matches a set no finite list of exact
// and prefix strings describes (".*a-book.*new", "/v[0-9]+", case folding).
// A Form with Value "" and Exact false matches every path.
func PathForms(re string) ([]Form, bool) {
	if re == "" {
		return []Form{{}}, true
	}
	ps, ok := expandTop(re)
	if !ok {
		return nil, false
	}
	out := make([]Form, 0, len(ps))
	for _, p := range ps {
		out = append(out, Form{Value: p.s, Exact: p.st == ended})
	}
	return dedupe(out), true
}

// HeaderForms reduces a header regex, which must match the whole value, to
// exact values, prefixes ("abc.*") or suffixes (".*abc"). A Form with Value
// "" and neither Exact nor Suffix matches every value, a missing header
// included (a missing header reads as "").
func HeaderForms(re string) ([]Form, bool) {
	r, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return nil, false
	}
	// ".*abc": a suffix, which the prefix expansion cannot express.
	if r.Op == syntax.OpConcat && len(r.Sub) == 2 && isAnyStar(r.Sub[0]) && r.Sub[1].Op == syntax.OpLiteral && r.Sub[1].Flags&syntax.FoldCase == 0 {
		return []Form{{Value: string(r.Sub[1].Rune), Suffix: true}}, true
	}
	ps, ok := expandTop(re)
	if !ok {
		return nil, false
	}
	out := make([]Form, 0, len(ps))
	for _, p := range ps {
		// The whole value must match: what is still building ends here.
		out = append(out, Form{Value: p.s, Exact: p.st != open})
	}
	return dedupe(out), true
}

// IsLiteral reports whether re matches exactly one string, and returns it.
func IsLiteral(re string) (string, bool) {
	r, err := syntax.Parse(re, syntax.Perl)
	if err != nil || r.Op != syntax.OpLiteral || r.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	return string(r.Rune), true
}

func dedupe(fs []Form) []Form {
	// Matching every value makes every other form redundant.
	if i := slices.IndexFunc(fs, func(f Form) bool { return f.Value == "" && !f.Exact && !f.Suffix }); i >= 0 {
		return []Form{{}}
	}
	slices.SortFunc(fs, func(a, b Form) int {
		if c := strings.Compare(a.Value, b.Value); c != 0 {
			return c
		}
		return boolCmp(a.Exact, b.Exact) + 2*boolCmp(a.Suffix, b.Suffix)
	})
	return slices.Compact(fs)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func expandTop(re string) ([]piece, bool) {
	r, err := syntax.Parse(re, syntax.Perl)
	if err != nil {
		return nil, false
	}
	// A leading ^ restates the anchor SMI implies.
	if r.Op == syntax.OpConcat && len(r.Sub) > 0 && isBegin(r.Sub[0]) {
		r = &syntax.Regexp{Op: syntax.OpConcat, Sub: r.Sub[1:], Flags: r.Flags}
	} else if isBegin(r) {
		r = &syntax.Regexp{Op: syntax.OpEmptyMatch}
	}
	ps, ok := expand(r)
	if !ok {
		return nil, false
	}
	return ps, len(ps) > 0
}

func isBegin(r *syntax.Regexp) bool {
	return r.Op == syntax.OpBeginText || r.Op == syntax.OpBeginLine
}

func isAnyStar(r *syntax.Regexp) bool {
	return r.Op == syntax.OpStar && (r.Sub[0].Op == syntax.OpAnyChar || r.Sub[0].Op == syntax.OpAnyCharNotNL)
}

// expand lists the strings r matches, each with what may follow it.
func expand(r *syntax.Regexp) ([]piece, bool) {
	switch r.Op {
	case syntax.OpEmptyMatch:
		return []piece{{}}, true
	case syntax.OpLiteral:
		if r.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []piece{{s: string(r.Rune)}}, true
	case syntax.OpCharClass:
		var out []piece
		for i := 0; i+1 < len(r.Rune); i += 2 {
			for c := r.Rune[i]; c <= r.Rune[i+1]; c++ {
				if len(out) == maxForms {
					return nil, false
				}
				out = append(out, piece{s: string(c)})
			}
		}
		return out, true
	case syntax.OpStar:
		if isAnyStar(r) {
			return []piece{{st: open}}, true
		}
		return nil, false
	case syntax.OpQuest:
		sub, ok := expand(r.Sub[0])
		if !ok {
			return nil, false
		}
		return append(sub, piece{}), true
	case syntax.OpEndText, syntax.OpEndLine:
		return []piece{{st: ended}}, true
	case syntax.OpCapture:
		return expand(r.Sub[0])
	case syntax.OpAlternate:
		var out []piece
		for _, s := range r.Sub {
			sub, ok := expand(s)
			if !ok || len(out)+len(sub) > maxForms {
				return nil, false
			}
			out = append(out, sub...)
		}
		return out, true
	case syntax.OpConcat:
		acc := []piece{{}}
		for _, s := range r.Sub {
			sub, ok := expand(s)
			if !ok {
				return nil, false
			}
			if acc, ok = concat(acc, sub); !ok {
				return nil, false
			}
		}
		return acc, true
	}
	return nil, false
}

func concat(as, bs []piece) ([]piece, bool) {
	var out []piece
	for _, a := range as {
		for _, b := range bs {
			switch a.st {
			case building:
				out = append(out, piece{s: a.s + b.s, st: b.st})
			case open:
				// ".*" then more text: not a prefix any more.
				if b.s != "" {
					return nil, false
				}
				out = append(out, a)
			case ended:
				// Text after "$" can never match; an empty tail keeps it.
				if b.s == "" {
					out = append(out, a)
				}
			}
			if len(out) > maxForms {
				return nil, false
			}
		}
	}
	return out, true
}
