// Package expr compiles and evaluates the condition expressions and
// parameter templates of Cairn definitions.
//
// It uses github.com/expr-lang/expr: pure Go (no cgo, no protobuf type
// system, unlike google/cel-go), compiled to bytecode that evaluates in
// well under a microsecond for typical conditions, and at home with the
// dynamic map[string]any values that event props and profiles are.
//
// The environment of an expression has three variables, each a map:
//
//	event   {"name": string, "ts": int64 (ms), "props": map}
//	entry   the journey entry event, same shape (journeys only)
//	profile the user's profile attributes
//
// Missing attributes are nil; a comparison with nil is false rather than
// an error, so a condition on an absent prop simply does not match.
package expr

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/cairn-cjo/cairn/engine"
)

// Program is a compiled boolean condition. It is immutable and safe for
// concurrent use.
type Program struct {
	src  string
	prog *vm.Program
}

// Compile compiles a boolean condition over event, entry and profile.
func Compile(src string) (*Program, error) {
	p, err := expr.Compile(src, expr.AllowUndefinedVariables(), expr.AsBool())
	if err != nil {
		return nil, fmt.Errorf("compiling expression %q: %w", src, err)
	}
	return &Program{src: src, prog: p}, nil
}

// String returns the source of the condition.
func (p *Program) String() string { return p.src }

// Eval evaluates the condition. A runtime error (a type mismatch such as
// nil >= 10) is reported as false with the error, which callers count.
func (p *Program) Eval(env map[string]any) (bool, error) {
	out, err := expr.Run(p.prog, env)
	if err != nil {
		return false, fmt.Errorf("evaluating %q: %w", p.src, err)
	}
	b, _ := out.(bool)
	return b, nil
}

// EventMap returns the expression view of ev: {"name", "ts", "props"}.
func EventMap(ev *engine.Event) map[string]any {
	if ev == nil {
		return nil
	}
	props := ev.Props
	if props == nil {
		props = map[string]any{}
	}
	return map[string]any{"name": ev.Name, "ts": ev.TS, "props": props, "id": ev.EventID}
}

// Env builds an expression environment. Any argument may be nil.
func Env(event, entry *engine.Event, profile map[string]any) map[string]any {
	if profile == nil {
		profile = map[string]any{}
	}
	return map[string]any{"event": EventMap(event), "entry": EventMap(entry), "profile": profile}
}

var placeholder = regexp.MustCompile(`\{\{\s*(.*?)\s*\}\}`)

// Template is a compiled string with {{ expression }} placeholders, such as
// '{{ entry.props.sku }}'. It is immutable and safe for concurrent use.
type Template struct {
	parts []string // literal text; len(parts) == len(progs)+1
	progs []*vm.Program
}

// CompileTemplate compiles s. Text outside {{ }} is kept as is.
func CompileTemplate(s string) (*Template, error) {
	t := &Template{}
	rest := s
	for {
		loc := placeholder.FindStringSubmatchIndex(rest)
		if loc == nil {
			t.parts = append(t.parts, rest)
			return t, nil
		}
		src := rest[loc[2]:loc[3]]
		p, err := expr.Compile(src, expr.AllowUndefinedVariables())
		if err != nil {
			return nil, fmt.Errorf("compiling template expression %q: %w", src, err)
		}
		t.parts = append(t.parts, rest[:loc[0]])
		t.progs = append(t.progs, p)
		rest = rest[loc[1]:]
	}
}

// Render evaluates the placeholders in env; nil renders as "".
func (t *Template) Render(env map[string]any) (string, error) {
	if len(t.progs) == 0 {
		return t.parts[0], nil
	}
	var b strings.Builder
	for i, p := range t.progs {
		b.WriteString(t.parts[i])
		v, err := expr.Run(p, env)
		if err != nil {
			return "", fmt.Errorf("rendering template: %w", err)
		}
		if v != nil {
			fmt.Fprint(&b, v)
		}
	}
	b.WriteString(t.parts[len(t.parts)-1])
	return b.String(), nil
}
