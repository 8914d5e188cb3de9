package smi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Strict decoding.
//
// encoding/json's DisallowUnknownFields stops at the first unknown field and
// names it without a path; its type errors drop slice indices and it matches
// keys case-insensitively, unlike the Kubernetes API server. A user fixing a
// manifest wants every problem at once, each with its full path
// ("spec.backends[0].wieght"), so the document is first checked against the
// Go type by walking the generic JSON tree beside the type, then the tree,
// pruned of unknown fields, is handed to encoding/json, which can no longer
// fail on anything but a bug.

// problem is one finding of the walk. unknown problems are unknown fields; the
// others are wrong types or values and make the document unusable.
type problem struct {
	field   string
	msg     string
	unknown bool
}

// parseTree decodes a document into a generic tree, keeping numbers exact.
func parseTree(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value in the document")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("document is %s, want an object", describe(v))
	}
	return m, nil
}

// decodeStrict checks tree against the type of out (a pointer), fills out
// from what is known, and returns the problems found. out is filled only
// when no problem other than unknown fields was found.
func decodeStrict(tree map[string]any, out any) []problem {
	w := walker{}
	pruned := w.walk("", tree, reflect.TypeOf(out).Elem())
	for _, p := range w.problems {
		if !p.unknown {
			return w.problems
		}
	}
	data, err := json.Marshal(pruned)
	if err == nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		// The walk accepted what encoding/json rejects: report it rather than
		// pretend the object was read.
		w.problems = append(w.problems, problem{msg: "cannot decode: " + err.Error()})
	}
	return w.problems
}

type walker struct {
	problems []problem
}

func (w *walker) typeErr(path string, v any, want string) {
	w.problems = append(w.problems, problem{field: path, msg: fmt.Sprintf("wrong type: got %s, want %s", describe(v), want)})
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// walk returns v with the fields unknown to t removed, recording problems.
func (w *walker) walk(path string, v any, t reflect.Type) any {
	if v == nil {
		return nil // null leaves the zero value, as encoding/json does
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		// Types with their own JSON form (resource.Quantity, metav1.Time) are
		// asked directly; their error is the best description there is.
		data, _ := json.Marshal(v)
		if err := json.Unmarshal(data, reflect.New(t).Interface()); err != nil {
			w.problems = append(w.problems, problem{field: path, msg: fmt.Sprintf("invalid value %s: %v", describe(v), unwrapJSONErr(err))})
		}
		return v
	}
	switch t.Kind() {
	case reflect.Pointer:
		return w.walk(path, v, t.Elem())
	case reflect.Interface:
		return v
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeErr(path, v, "object")
			return nil
		}
		fields := jsonFields(t)
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			ft, known := fields[k]
			if !known {
				w.problems = append(w.problems, problem{field: joinPath(path, k), msg: unknownMsg(k, fields), unknown: true})
				continue
			}
			out[k] = w.walk(joinPath(path, k), m[k], ft)
		}
		return out
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			w.typeErr(path, v, "object")
			return nil
		}
		out := make(map[string]any, len(m))
		for _, k := range sortedKeys(m) {
			out[k] = w.walk(joinPath(path, k), m[k], t.Elem())
		}
		return out
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			if _, ok := v.(string); !ok {
				w.typeErr(path, v, "base64 string")
			}
			return v
		}
		l, ok := v.([]any)
		if !ok {
			w.typeErr(path, v, "list")
			return nil
		}
		out := make([]any, len(l))
		for i, e := range l {
			out[i] = w.walk(fmt.Sprintf("%s[%d]", path, i), e, t.Elem())
		}
		return out
	case reflect.String:
		if _, ok := v.(string); !ok {
			w.typeErr(path, v, "string")
			return nil
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			w.typeErr(path, v, "boolean")
			return nil
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeErr(path, v, "integer")
			return nil
		}
		if _, err := strconv.ParseInt(n.String(), 10, t.Bits()); err != nil {
			w.typeErr(path, v, intWant(err, t.Bits()))
			return nil
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeErr(path, v, "unsigned integer")
			return nil
		}
		if _, err := strconv.ParseUint(n.String(), 10, t.Bits()); err != nil {
			w.typeErr(path, v, "unsigned "+intWant(err, t.Bits()))
			return nil
		}
	case reflect.Float32, reflect.Float64:
		n, ok := v.(json.Number)
		if !ok {
			w.typeErr(path, v, "number")
			return nil
		}
		if f, err := n.Float64(); err != nil || math.IsInf(f, 0) {
			w.typeErr(path, v, "number")
			return nil
		}
	default:
		w.problems = append(w.problems, problem{field: path, msg: fmt.Sprintf("field of Go kind %s cannot be read", t.Kind())})
		return nil
	}
	return v
}

// jsonFields lists the JSON names of a struct's fields the way encoding/json
// sees them: untagged or ",inline" embedded structs are flattened.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					if _, shadowed := out[k]; !shadowed {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func intWant(err error, bits int) string {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Sprintf("integer that fits in %d bits", bits)
	}
	return "integer"
}

func unknownMsg(k string, fields map[string]reflect.Type) string {
	names := sortedKeys(fields)
	for _, n := range names {
		if strings.EqualFold(n, k) {
			return fmt.Sprintf("unknown field %q (did you mean %q? field names are case-sensitive)", k, n)
		}
	}
	return fmt.Sprintf("unknown field %q (known here: %s)", k, strings.Join(names, ", "))
}

// joinPath appends a key to a field path; keys that would read ambiguously
// after a dot are bracketed and quoted.
func joinPath(path, key string) string {
	if key == "" || strings.ContainsAny(key, ".[]\" ") {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names a JSON value for messages: its type and a short rendering.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return "string " + strconv.Quote(clip(x))
	case json.Number:
		return "number " + clip(x.String())
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case []any:
		return "list"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func unwrapJSONErr(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// lookup follows keys down a tree of objects; ok is false when a key is
// missing or a step is not an object.
func lookup(tree map[string]any, keys ...string) (any, bool) {
	var cur any = tree
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}
