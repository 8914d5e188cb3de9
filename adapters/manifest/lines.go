package manifest

import (
	"bytes"
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/causeway-mesh/causeway/spec"
)

// Index knows, for every document it was built from, the line in the file of
// each field path ("spec.backends[1].weight"). Translators only see a
// document's JSON and name the field of a problem; the index turns that into
// the line an editor should jump to. The zero value (or nil) knows nothing.
type Index struct {
	docs map[docKey]*docLines
}

type docKey struct {
	file string
	doc  int
}

type docLines struct {
	start  int            // the document's own line (Source.Line)
	fields map[string]int // field path -> 1-based line in the file
}

// maxIndexNodes bounds the work of indexing one document, so that a document
// built of nested aliases cannot make the index explode; past it the rest of
// the document keeps the document's line.
const maxIndexNodes = 100_000

// add indexes one document whose text starts at line first of the file.
func (ix *Index) add(src spec.Source, text []byte, first int) {
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return // the document parsed before; if this parser disagrees, keep document lines
	}
	d := &docLines{start: src.Line, fields: map[string]int{}}
	// go-yaml also counts a lone "\r" as a line break; stay in the text.
	last := first + bytes.Count(text, []byte("\n"))
	at := func(n *yaml.Node) int { return min(first+n.Line-1, last) }
	budget := maxIndexNodes
	var walk func(n *yaml.Node, path string, depth int)
	walk = func(n *yaml.Node, path string, depth int) {
		budget--
		if n == nil || budget < 0 || depth > 64 {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path, depth+1)
			}
		case yaml.AliasNode:
			walk(n.Alias, path, depth+1)
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind != yaml.ScalarNode || k.Value == "<<" {
					continue
				}
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if _, seen := d.fields[p]; !seen {
					d.fields[p] = at(k)
				}
				walk(v, p, depth+1)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if _, seen := d.fields[p]; !seen {
					d.fields[p] = at(c)
				}
				walk(c, p, depth+1)
			}
		}
	}
	walk(&root, "", 0)
	if ix.docs == nil {
		ix.docs = map[docKey]*docLines{}
	}
	ix.docs[docKey{src.File, src.Document}] = d
}

// Line returns the line of field in the document src names: the line of the
// field itself or, when the field is not written there (a missing required
// field, a path without list indexes), of its nearest written parent.
func (ix *Index) Line(src spec.Source, field string) (int, bool) {
	if ix == nil || field == "" {
		return 0, false
	}
	d, ok := ix.docs[docKey{src.File, src.Document}]
	if !ok {
		return 0, false
	}
	for p := field; p != ""; p = parent(p) {
		if l, ok := d.fields[p]; ok {
			return l, true
		}
	}
	return 0, false
}

// parent drops the last step of a field path: "a.b[1]" -> "a.b" -> "a" -> "".
func parent(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Locate moves each diagnostic that points at the start of its document to
// the line of its field. Diagnostics that already carry a more precise line
// (syntax errors) are left alone.
func (ix *Index) Locate(ds spec.Diagnostics) {
	if ix == nil {
		return
	}
	for i := range ds {
		d := &ds[i]
		doc, ok := ix.docs[docKey{d.Source.File, d.Source.Document}]
		if !ok || d.Source.Line != doc.start {
			continue
		}
		if l, ok := ix.Line(d.Source, d.Field); ok {
			d.Source.Line = l
		}
	}
}
