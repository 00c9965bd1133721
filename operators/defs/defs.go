// Package defs reads definition files: YAML documents, possibly several per
// file separated by "---", each with a "kind" (journey, segment, funnel,
// policy). It only splits and locates documents; each operator package
// decodes its own kind and reports errors through Errorf so that every error
// names the file, line and field.
package defs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Doc is one YAML document of a definition file.
type Doc struct {
	File string     // path as given to LoadDir joined with the file name
	Kind string     // value of the top-level "kind" field
	Node *yaml.Node // the document's top-level mapping node
}

// Error is one problem in a definition, located by file, line and field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// Errorf returns an *Error located at node (which may be nil: line 0).
func (d *Doc) Errorf(node *yaml.Node, field, format string, args ...any) *Error {
	line := 0
	if node != nil {
		line = node.Line
	} else if d.Node != nil {
		line = d.Node.Line
	}
	return &Error{File: d.File, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Field returns the value node of key in the mapping m, or nil.
func Field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Files returns the names of the definition files directly in dir (every
// *.yaml and *.yml file), in name order.
func Files(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading definitions dir: %w", err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, nil
}

// LoadDir reads every definition file directly in dir (Files), in name
// order, and returns their documents. Empty documents are skipped.
func LoadDir(dir string) ([]Doc, error) {
	names, err := Files(dir)
	if err != nil {
		return nil, err
	}
	var docs []Doc
	var errs []error
	for _, n := range names {
		path := filepath.Join(dir, n)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading definition file: %w", err)
		}
		ds, err := Parse(path, b)
		if err != nil {
			errs = append(errs, err)
		}
		docs = append(docs, ds...)
	}
	return docs, errors.Join(errs...)
}

// Parse splits the YAML in b into documents. file is used in errors.
func Parse(file string, b []byte) ([]Doc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []Doc
	var errs []error
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: parsing yaml: %w", file, err))
			break
		}
		if len(n.Content) == 0 || n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null" {
			continue
		}
		d := Doc{File: file, Node: n.Content[0]}
		if d.Node.Kind != yaml.MappingNode {
			errs = append(errs, d.Errorf(d.Node, "", "a definition must be a mapping"))
			continue
		}
		k := Field(d.Node, "kind")
		if k == nil || k.Value == "" {
			errs = append(errs, d.Errorf(d.Node, "kind", "missing (journey, segment, funnel or policy)"))
			continue
		}
		d.Kind = k.Value
		docs = append(docs, d)
	}
	return docs, errors.Join(errs...)
}
