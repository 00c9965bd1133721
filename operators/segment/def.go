package segment

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/defs"
	"github.com/cairn-cjo/cairn/operators/expr"
)

// Kind is the definition kind this package reads.
const Kind = "segment"

// MaxCount bounds the threshold of an event rule's count. A windowed rule
// keeps at most threshold+1 timestamps per user, so this bounds the per-user
// state of one rule to about 8 KiB.
const MaxCount = 1000

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

type ruleKind uint8

const (
	ruleEvent ruleKind = iota + 1
	ruleProfile
	ruleAll
	ruleAny
	ruleNot
	ruleSegment
	ruleList
)

var ruleKeys = map[string]ruleKind{
	"event": ruleEvent, "profile": ruleProfile, "all": ruleAll, "any": ruleAny,
	"not": ruleNot, "segment": ruleSegment, "list": ruleList,
}

// rule is one node of a segment's rule tree. It is immutable after New.
type rule struct {
	kind  ruleKind
	event *eventRule    // ruleEvent
	prog  *expr.Program // ruleProfile
	kids  []*rule       // ruleAll, ruleAny, ruleNot (one kid)
	ref   string        // ruleSegment
	node  *yaml.Node    // for errors
	field string        // for errors
}

// eventRule counts the user's events named name that match where, in the
// rolling window within (0 = all time), and compares the count with n.
type eventRule struct {
	name   string
	where  *expr.Program // nil matches every event
	op     string        // one of >=, >, <=, <, ==, !=
	n      int
	within int64  // ms; 0 means all time
	sub    []byte // per-user state key of the counter
}

// need is how many timestamps (or how large a count) decide the rule: any
// count above n compares like n+1.
func (e *eventRule) need() int { return e.n + 1 }

func (e *eventRule) test(count int) bool {
	switch e.op {
	case ">=":
		return count >= e.n
	case ">":
		return count > e.n
	case "<=":
		return count <= e.n
	case "<":
		return count < e.n
	case "==":
		return count == e.n
	default:
		return count != e.n
	}
}

// segmentDef is one parsed definition.
type segmentDef struct {
	id     string
	doc    defs.Doc
	idNode *yaml.Node
	rule   *rule
}

// parser collects every problem of a set of documents.
type parser struct {
	doc  *defs.Doc
	errs []error
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, p.doc.Errorf(n, field, format, args...))
}

// parseDocs decodes every segment document and checks ids and references.
// It returns all problems joined.
func parseDocs(docs []defs.Doc) ([]*segmentDef, error) {
	var out []*segmentDef
	var errs []error
	seen := map[string]*segmentDef{}
	for i := range docs {
		if docs[i].Kind != Kind {
			continue
		}
		p := &parser{doc: &docs[i]}
		d := p.segment()
		errs = append(errs, p.errs...)
		if d == nil {
			continue
		}
		if prev, ok := seen[d.id]; ok {
			errs = append(errs, d.doc.Errorf(d.idNode, "id", "duplicate segment %q (first defined at %s:%d)", d.id, prev.doc.File, prev.idNode.Line))
			continue
		}
		seen[d.id] = d // declared, even if its rule is bad: references to it are fine
		if d.rule != nil {
			out = append(out, d)
		}
	}
	errs = append(errs, checkRefs(out, seen)...)
	if len(errs) == 0 {
		errs = findCycles(out, seen) // needs every rule
	}
	return out, errors.Join(errs...)
}

// segment decodes one document. It returns nil if the id is missing or
// invalid, and a definition with a nil rule if only the rule is bad.
func (p *parser) segment() *segmentDef {
	m := p.doc.Node
	d := &segmentDef{doc: *p.doc}
	for i := 0; i+1 < len(m.Content); i += 2 {
		switch k := m.Content[i].Value; k {
		case "kind", "id", "rule", "description", "name":
		default:
			p.errorf(m.Content[i], k, "unknown field (want id, rule, description, name)")
		}
	}
	d.idNode = defs.Field(m, "id")
	switch {
	case d.idNode == nil:
		p.errorf(m, "id", "missing")
		return nil
	case d.idNode.Kind != yaml.ScalarNode || !idPattern.MatchString(d.idNode.Value):
		p.errorf(d.idNode, "id", "invalid segment id %q (1-64 of A-Z a-z 0-9 _ . -, starting with a letter or digit)", d.idNode.Value)
		return nil
	}
	d.id = d.idNode.Value
	rn := defs.Field(m, "rule")
	if rn == nil {
		p.errorf(m, "rule", "missing")
		return d
	}
	d.rule = p.rule(rn, "rule") // nil after an error
	return d
}

// rule decodes the rule at n. field is the path used in errors, such as
// "rule.all[1].not". It returns nil after recording an error.
func (p *parser) rule(n *yaml.Node, field string) *rule {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		p.errorf(n, field, "a rule is a mapping with exactly one of event, profile, all, any, not, segment, list")
		return nil
	}
	key, val := n.Content[0].Value, n.Content[1]
	kind, ok := ruleKeys[key]
	if !ok {
		p.errorf(n.Content[0], field+"."+key, "unknown rule (want event, profile, all, any, not, segment or list)")
		return nil
	}
	r := &rule{kind: kind, node: val, field: field + "." + key}
	switch kind {
	case ruleEvent:
		r.event = p.eventRule(val, r.field)
		ok = r.event != nil
	case ruleProfile:
		r.prog, ok = p.expression(val, r.field)
	case ruleAll, ruleAny:
		ok = p.children(r, val)
	case ruleNot:
		k := p.rule(val, r.field)
		r.kids, ok = []*rule{k}, k != nil
	case ruleSegment:
		r.ref = val.Value
		ok = val.Kind == yaml.ScalarNode && r.ref != ""
		if !ok {
			p.errorf(val, r.field, "want a segment id")
		}
	case ruleList:
		ok = val.Kind == yaml.ScalarNode && val.Value == "true"
		if !ok {
			p.errorf(val, r.field, "want true")
		}
	}
	if !ok {
		return nil
	}
	return r
}

func (p *parser) children(r *rule, seq *yaml.Node) bool {
	if seq.Kind != yaml.SequenceNode || len(seq.Content) == 0 {
		p.errorf(seq, r.field, "want a non-empty list of rules")
		return false
	}
	ok := true
	for i, c := range seq.Content {
		k := p.rule(c, fmt.Sprintf("%s[%d]", r.field, i))
		ok = ok && k != nil
		r.kids = append(r.kids, k)
	}
	return ok
}

func (p *parser) expression(n *yaml.Node, field string) (*expr.Program, bool) {
	if n.Kind != yaml.ScalarNode || strings.TrimSpace(n.Value) == "" {
		p.errorf(n, field, "want an expression")
		return nil, false
	}
	prog, err := expr.Compile(n.Value)
	if err != nil {
		p.errorf(n, field, "%v", err)
		return nil, false
	}
	return prog, true
}

func (p *parser) eventRule(n *yaml.Node, field string) *eventRule {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "want a mapping {name, where, count, within}")
		return nil
	}
	e := &eventRule{op: ">=", n: 1}
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		f := field + "." + k
		switch k {
		case "name":
			e.name = v.Value
			if v.Kind != yaml.ScalarNode || e.name == "" || strings.HasPrefix(e.name, "$segment_") {
				p.errorf(v, f, "want an event name (not a $segment_ event)")
				ok = false
			}
		case "where":
			var good bool
			e.where, good = p.expression(v, f)
			ok = ok && good
		case "count":
			var err error
			if e.op, e.n, err = parseCount(v.Value); err != nil {
				p.errorf(v, f, "%v", err)
				ok = false
			}
		case "within":
			var err error
			if e.within, err = parseWithin(v.Value); err != nil {
				p.errorf(v, f, "%v", err)
				ok = false
			}
		default:
			p.errorf(n.Content[i], f, "unknown field (want name, where, count, within)")
			ok = false
		}
	}
	if defs.Field(n, "name") == nil {
		p.errorf(n, field+".name", "missing")
		ok = false
	}
	if !ok {
		return nil
	}
	return e
}

// parseCount reads "OP N" (OP one of >=, >, <=, <, ==, !=) or a bare "N",
// which means ">= N".
func parseCount(src string) (string, int, error) {
	s := strings.TrimSpace(src)
	op := ">="
	for _, o := range []string{">=", "<=", "==", "!=", ">", "<"} {
		if strings.HasPrefix(s, o) {
			op, s = o, strings.TrimSpace(s[len(o):])
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > MaxCount {
		return "", 0, fmt.Errorf("bad count %q: want OP N with OP one of >= > <= < == != and 0 <= N <= %d", src, MaxCount)
	}
	return op, n, nil
}

// parseWithin reads a positive duration: "30d", "2w", or anything
// time.ParseDuration accepts ("36h", "90m"). It returns milliseconds.
func parseWithin(s string) (int64, error) {
	s = strings.TrimSpace(s)
	unit := time.Duration(0)
	switch {
	case strings.HasSuffix(s, "d"):
		unit = 24 * time.Hour
	case strings.HasSuffix(s, "w"):
		unit = 7 * 24 * time.Hour
	}
	var d time.Duration
	if unit != 0 {
		n, err := strconv.ParseInt(s[:len(s)-1], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q: %w", s, err)
		}
		if n < 1 || n > 10*366 {
			return 0, fmt.Errorf("bad duration %q: want between 1ms and 10 years", s)
		}
		d = time.Duration(n) * unit
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("bad duration %q: %w", s, err)
		}
	}
	if d < time.Millisecond || d > 10*365*24*time.Hour {
		return 0, fmt.Errorf("bad duration %q: want between 1ms and 10 years", s)
	}
	return d.Milliseconds(), nil
}

// canonical writes the rule in a canonical form, for fingerprints.
func (r *rule) canonical(b *strings.Builder) {
	switch r.kind {
	case ruleEvent:
		e, where := r.event, ""
		if e.where != nil {
			where = e.where.String()
		}
		fmt.Fprintf(b, "event(%q,%q,%s%d,%d)", e.name, where, e.op, e.n, e.within)
	case ruleProfile:
		fmt.Fprintf(b, "profile(%q)", r.prog.String())
	case ruleSegment:
		fmt.Fprintf(b, "segment(%q)", r.ref)
	case ruleList:
		b.WriteString("list")
	default:
		fmt.Fprintf(b, "%d(", r.kind)
		for _, k := range r.kids {
			k.canonical(b)
			b.WriteByte(',')
		}
		b.WriteByte(')')
	}
}

// walk calls fn on r and every rule below it, depth first.
func (r *rule) walk(fn func(*rule)) {
	fn(r)
	for _, k := range r.kids {
		k.walk(fn)
	}
}

// checkRefs reports references to undeclared segments and self-references,
// each at the referring node.
func checkRefs(segs []*segmentDef, byID map[string]*segmentDef) []error {
	var errs []error
	for _, d := range segs {
		d.rule.walk(func(r *rule) {
			if r.kind != ruleSegment {
				return
			}
			switch _, ok := byID[r.ref]; {
			case r.ref == d.id:
				errs = append(errs, d.doc.Errorf(r.node, r.field, "segment %q refers to itself", d.id))
			case !ok:
				errs = append(errs, d.doc.Errorf(r.node, r.field, "unknown segment %q", r.ref))
			}
		})
	}
	return errs
}

// findCycles runs a depth-first search in id order and reports each cycle
// once, at the reference that closes it.
func findCycles(segs []*segmentDef, byID map[string]*segmentDef) []error {
	ids := make([]string, 0, len(segs))
	for _, d := range segs {
		ids = append(ids, d.id)
	}
	sort.Strings(ids)
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var errs []error
	var visit func(id string)
	visit = func(id string) {
		color[id] = grey
		stack = append(stack, id)
		d := byID[id]
		d.rule.walk(func(r *rule) {
			if r.kind != ruleSegment {
				return
			}
			switch color[r.ref] {
			case white:
				visit(r.ref)
			case grey:
				i := indexOf(stack, r.ref)
				path := strings.Join(append(append([]string(nil), stack[i:]...), r.ref), " -> ")
				errs = append(errs, d.doc.Errorf(r.node, r.field, "segment cycle: %s", path))
			}
		})
		stack = stack[:len(stack)-1]
		color[id] = black
	}
	for _, id := range ids {
		if color[id] == white {
			visit(id)
		}
	}
	return errs
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
