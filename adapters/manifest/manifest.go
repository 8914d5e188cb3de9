package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/causeway-mesh/causeway/adapters"
	"github.com/causeway-mesh/causeway/spec"
)

// Stdin is the path that stands for standard input, as in `kubectl apply -f -`.
const Stdin = "-"

// Read reads every path in order: "-" from stdin, a directory recursively
// (files ending in .yaml, .yml or .json, in lexical order), anything else as
// one file whatever its name. Problems inside the manifests are diagnostics;
// the error is only for paths that cannot be read at all (missing file,
// permission, stdin named twice, a directory without manifests).
func Read(paths []string, stdin io.Reader) ([]adapters.Object, spec.Diagnostics, error) {
	objs, diags, _, err := read(paths, stdin, false)
	return objs, diags, err
}

// ReadIndexed is Read that also returns the line of every field of every
// document (see Index).
func ReadIndexed(paths []string, stdin io.Reader) ([]adapters.Object, spec.Diagnostics, *Index, error) {
	return read(paths, stdin, true)
}

func read(paths []string, stdin io.Reader, index bool) ([]adapters.Object, spec.Diagnostics, *Index, error) {
	files, err := Files(paths)
	if err != nil {
		return nil, nil, nil, err
	}
	var objs []adapters.Object
	var diags spec.Diagnostics
	ix := &Index{}
	for _, f := range files {
		var data []byte
		if f == Stdin {
			if stdin == nil {
				return nil, nil, nil, errors.New("-: no standard input")
			}
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read %s: %w", f, err)
		}
		p := parser{file: f}
		if index {
			p.index = ix
		}
		p.parse(data)
		objs = append(objs, p.objs...)
		diags = append(diags, p.diags...)
	}
	if !index {
		ix = nil
	}
	return objs, diags, ix, nil
}

// Files expands paths into the list of files Read will parse, in order.
func Files(paths []string) ([]string, error) {
	var files []string
	stdin := false
	for _, p := range paths {
		if p == Stdin {
			if stdin {
				return nil, errors.New("-: standard input given more than once")
			}
			stdin = true
			files = append(files, p)
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		n := len(files)
		// WalkDir visits entries in lexical order, so the file order (and
		// with it the order of diagnostics) does not depend on the OS.
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && IsManifestName(path) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(files) == n {
			return nil, fmt.Errorf("%s: no *.yaml, *.yml or *.json files in the directory", p)
		}
	}
	return files, nil
}

// IsManifestName reports whether a directory walk reads the file.
func IsManifestName(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Parse splits data into documents and returns one Object per non-empty
// document. file is used for Source.File and diagnostics only. Parse never
// panics: every problem becomes a diagnostic and the other documents are
// still returned.
func Parse(file string, data []byte) ([]adapters.Object, spec.Diagnostics) {
	p := parser{file: file}
	p.parse(data)
	return p.objs, p.diags
}

// ParseIndexed is Parse that also returns the line of every field of every
// document (see Index), for diagnostics that name a field.
func ParseIndexed(file string, data []byte) ([]adapters.Object, spec.Diagnostics, *Index) {
	p := parser{file: file, index: &Index{}}
	p.parse(data)
	return p.objs, p.diags, p.index
}

func (p *parser) parse(data []byte) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	if looksLikeJSON(data) {
		p.jsonStream(data)
	} else {
		for _, c := range splitYAML(data) {
			p.yamlDocument(c)
		}
	}
}

type parser struct {
	file  string
	doc   int // index of the next non-empty document
	objs  []adapters.Object
	diags spec.Diagnostics

	// index, when not nil, collects field lines; text and first are the
	// current document's text and the file line its first line is on.
	index *Index
	text  []byte
	first int
}

func (p *parser) errorf(src spec.Source, obj spec.Object, field, format string, args ...any) {
	p.diags.Errorf(src, obj, field, format, args...)
}

// looksLikeJSON reports whether to read the input as a stream of JSON
// values: it starts with "{", as kubectl's YAML-or-JSON decoder decides. A
// JSON decoder reads every one of several concatenated objects (YAML would
// keep the first) and its errors point at the right byte even where YAML
// would stumble (tabs used for indentation). "{{" starts a Helm or Go
// template, not JSON; it goes to YAML, whose error then says so.
func looksLikeJSON(data []byte) bool {
	t := bytes.TrimLeft(data, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && !bytes.HasPrefix(t, []byte("{{"))
}

// lineAt returns the 1-based line of byte offset off in data.
func lineAt(data []byte, off int) int {
	off = min(max(off, 0), len(data))
	return bytes.Count(data[:off], []byte("\n")) + 1
}
