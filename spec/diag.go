package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a Diagnostic.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Object names the input object a diagnostic is about.
type Object struct {
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

func (o Object) String() string {
	switch {
	case o.Kind == "" && o.Name == "":
		return ""
	case o.Namespace == "":
		return o.Kind + " " + o.Name
	default:
		return o.Kind + " " + o.Namespace + "/" + o.Name
	}
}

// Source is where an object came from: a file (or "-" for stdin, or a
// cluster URL), the index of the YAML document in it, and a 1-based line.
type Source struct {
	File     string `json:"file,omitempty"`
	Document int    `json:"document,omitempty"`
	Line     int    `json:"line,omitempty"`
}

// Diagnostic is one problem found in the inputs.
type Diagnostic struct {
	Severity Severity `json:"severity"`
	Source   Source   `json:"source,omitzero"`
	Object   Object   `json:"object,omitzero"`
	// Field is a path such as spec.backends[1].weight.
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String renders FILE:LINE: Kind namespace/name: field.path: message, leaving
// out the parts that are unknown.
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Source.File != "" {
		b.WriteString(d.Source.File)
		if d.Source.Line > 0 {
			fmt.Fprintf(&b, ":%d", d.Source.Line)
		}
		b.WriteString(": ")
	}
	if o := d.Object.String(); o != "" {
		b.WriteString(o)
		b.WriteString(": ")
	}
	if d.Field != "" {
		b.WriteString(d.Field)
		b.WriteString(": ")
	}
	if d.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(d.Message)
	return b.String()
}

// Diagnostics is a list of problems; it is an error when it holds an error.
type Diagnostics []Diagnostic

// Errorf appends an error about obj's field.
func (ds *Diagnostics) Errorf(src Source, obj Object, field, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Severity: SeverityError, Source: src, Object: obj, Field: field, Message: fmt.Sprintf(format, args...)})
}

// Warnf appends a warning about obj's field.
func (ds *Diagnostics) Warnf(src Source, obj Object, field, format string, args ...any) {
	*ds = append(*ds, Diagnostic{Severity: SeverityWarning, Source: src, Object: obj, Field: field, Message: fmt.Sprintf(format, args...)})
}

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SeverityError {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders diagnostics by file, document, line, object, field and message,
// so output does not depend on input order.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		if a.Source.Document != b.Source.Document {
			return a.Source.Document < b.Source.Document
		}
		if a.Source.Line != b.Source.Line {
			return a.Source.Line < b.Source.Line
		}
		if x, y := a.Object.String(), b.Object.String(); x != y {
			return x < y
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
}

// Err returns the diagnostics as an error when they hold an error, else nil.
func (ds Diagnostics) Err() error {
	if !ds.HasErrors() {
		return nil
	}
	return DiagnosticsError(ds.Errors())
}

// DiagnosticsError is the error form of a list of error diagnostics.
type DiagnosticsError Diagnostics

func (e DiagnosticsError) Error() string {
	lines := make([]string, len(e))
	for i, d := range e {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}
