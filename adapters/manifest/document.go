package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// chunk is the text of one YAML document. Its first line is the separator
// line with the "---" blanked out, so that line numbers inside the chunk
// map to the file by adding start-1.
type chunk struct {
	start int // 1-based line in the file of the chunk's first line
	data  []byte
}

// splitYAML cuts data at document markers: a line that starts with "---"
// followed by nothing or whitespace, or a "..." end marker. Doing this by
// lines (instead of handing the whole stream to a YAML decoder) keeps the
// line where each document starts, and lets one broken document be reported
// while the others are still read.
func splitYAML(data []byte) []chunk {
	var out []chunk
	cur := chunk{start: 1}
	var buf bytes.Buffer
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i+1], data[i+1:]
		} else {
			l, data = data, nil
		}
		if isMarker(l, "---") || isMarker(l, "...") {
			cur.data = bytes.Clone(buf.Bytes())
			out = append(out, cur)
			buf.Reset()
			cur = chunk{start: line}
			// Keep what follows the marker on the same line ("--- # c",
			// "--- {a: 1}") as part of the new document, at its column.
			buf.WriteString("   ")
			buf.Write(l[3:])
			continue
		}
		buf.Write(l)
	}
	cur.data = buf.Bytes()
	return append(out, cur)
}

func isMarker(l []byte, m string) bool {
	if !bytes.HasPrefix(l, []byte(m)) {
		return false
	}
	return len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r' || l[3] == '\n'
}

// firstContentLine returns the 0-based index of the first line that is not
// blank or a comment, or -1 when the chunk holds no content.
func firstContentLine(data []byte) int {
	for i, l := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(l)
		if len(t) > 0 && t[0] != '#' {
			return i
		}
	}
	return -1
}

// yamlLine finds the line number go-yaml puts in its messages
// ("yaml: line 3: ..." or "line 3: cannot unmarshal ...").
var yamlLine = regexp.MustCompile(`line (\d+)`)

func (p *parser) yamlDocument(c chunk) {
	first := firstContentLine(c.data)
	if first < 0 {
		return // empty document: only blank lines and comments
	}
	src := spec.Source{File: p.file, Document: p.doc, Line: c.start + first}
	p.doc++
	// Strict: a key given twice in one mapping is an error, as it is for
	// kubectl; the non-strict decoder would silently keep the last one.
	raw, err := yaml.YAMLToJSONStrict(c.data)
	if err != nil {
		line, msg := yamlError(err)
		if line > 0 {
			// go-yaml also counts a lone "\r" as a line break; keep the line
			// inside the document's own lines.
			last := c.start + bytes.Count(c.data, []byte("\n"))
			src.Line = min(c.start+line-1, last)
		}
		if bytes.Contains(c.data, []byte("{{")) {
			msg += " (this looks like a Helm or Go template: render it first)"
		}
		p.errorf(src, spec.Object{}, "", "document %d: invalid YAML: %s", src.Document, msg)
		return
	}
	p.text, p.first = c.data, c.start
	p.value(src, raw)
}

// yamlError takes the line (relative to the chunk) and the reason out of a
// go-yaml error: "yaml: line 3: reason", or "yaml: unmarshal errors:\n  line
// 3: reason\n  line 5: reason" for several problems. The line goes into the
// diagnostic's source position, so the message keeps only the reasons.
func yamlError(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:")
	line := 0
	var reasons []string
	for _, part := range strings.Split(msg, "\n") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if m := yamlLine.FindStringSubmatch(part); m != nil && strings.HasPrefix(part, m[0]) {
			if n, err := strconv.Atoi(m[1]); err == nil && line == 0 {
				line = n
			}
			part = strings.TrimSpace(strings.TrimPrefix(part[len(m[0]):], ":"))
		}
		reasons = append(reasons, part)
	}
	return line, strings.Join(reasons, "; ")
}

// jsonStream reads one or more JSON values one after the other.
func (p *parser) jsonStream(data []byte) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		before := int(dec.InputOffset())
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return
		}
		start := before + len(data[before:]) - len(bytes.TrimLeft(data[before:], " \t\r\n"))
		src := spec.Source{File: p.file, Document: p.doc, Line: lineAt(data, start)}
		p.doc++
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				src.Line = lineAt(data, int(se.Offset))
			} else if errors.Is(err, io.ErrUnexpectedEOF) {
				src.Line = lineAt(data, len(data))
			}
			p.errorf(src, spec.Object{}, "", "document %d: invalid JSON: %v", src.Document, err)
			return // the decoder cannot resynchronise after a syntax error
		}
		p.text, p.first = raw, src.Line
		p.value(src, raw)
	}
}

// value turns one parsed document into Objects.
func (p *parser) value(src spec.Source, raw []byte) {
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) || len(raw) == 0 {
		return // "~" or an explicit null: nothing to apply
	}
	p.object(src, "", raw, true)
}

// object reads the envelope (apiVersion, kind, metadata) of one document or
// List item; prefix is the field path of the item inside its List.
func (p *parser) object(src spec.Source, prefix string, raw []byte, top bool) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		p.errorf(src, spec.Object{}, strings.TrimSuffix(prefix, "."), "document %d: not an object with apiVersion and kind (found %s)", src.Document, jsonKind(raw))
		return
	}
	o := adapters.Object{Source: src}
	bad := false
	str := func(field string, v json.RawMessage, dst *string) {
		if v == nil {
			return
		}
		if err := json.Unmarshal(v, dst); err != nil {
			hint := ""
			if jsonKind(v) == "a boolean" {
				hint = " (YAML reads unquoted y, n, yes, no, on, off as booleans: quote it)"
			}
			p.errorf(src, named(o), prefix+field, "must be a string, found %s%s", jsonKind(v), hint)
			bad = true
		}
	}
	var meta map[string]json.RawMessage
	if m, ok := fields["metadata"]; ok && !bytes.Equal(m, []byte("null")) {
		if err := json.Unmarshal(m, &meta); err != nil {
			p.errorf(src, spec.Object{}, prefix+"metadata", "must be an object, found %s", jsonKind(m))
			bad = true
		}
	}
	str("metadata.name", meta["name"], &o.Name)
	str("metadata.namespace", meta["namespace"], &o.Namespace)
	str("kind", fields["kind"], &o.Kind)
	str("apiVersion", fields["apiVersion"], &o.APIVersion)
	if bad {
		return
	}
	// Without apiVersion and kind nothing can say what the document is; a
	// missing name is left to the pipeline, which requires it only of the
	// kinds Causeway reads (a kuttl TestStep has none and is merely ignored).
	if o.Kind == "" {
		p.errorf(src, named(o), prefix+"kind", "required")
		return
	}
	if o.APIVersion == "" {
		p.errorf(src, named(o), prefix+"apiVersion", "required")
		return
	}
	if o.Kind == "List" && top {
		// Items share the List's source, so their field paths cannot be
		// told apart; they keep the List's line.
		p.list(src, o, fields["items"])
		return
	}
	if top && p.index != nil {
		p.index.add(src, p.text, p.first)
	}
	o.Raw = raw
	p.objs = append(p.objs, o)
}

// list expands the items of a `kind: List` document, as kubectl does.
func (p *parser) list(src spec.Source, l adapters.Object, items json.RawMessage) {
	if items == nil || bytes.Equal(items, []byte("null")) {
		return
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(items, &elems); err != nil {
		p.errorf(src, named(l), "items", "must be a list, found %s", jsonKind(items))
		return
	}
	for i, e := range elems {
		p.object(src, fmt.Sprintf("items[%d].", i), e, false)
	}
}

// named is the object as far as it is known, for diagnostics: nothing when
// the kind is unknown (spec.Object would render a stray space), and
// "(unnamed)" for an object without metadata.name.
func named(o adapters.Object) spec.Object {
	if o.Kind == "" {
		return spec.Object{}
	}
	so := o.SpecObject()
	if so.Name == "" {
		so.Name = "(unnamed)"
	}
	return so
}

// jsonKind names the JSON type of raw for messages.
func jsonKind(raw []byte) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "nothing"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
