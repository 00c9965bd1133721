package journey

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/expr"
)

// cond decodes a condition: an expression string, or one of the structured
// forms {did}, {all}, {any}, {not}, {in_segment}. On error it records the problem and
// returns a condition that is always false, so that parsing goes on.
func (p *parser) cond(n *yaml.Node, field string) cond {
	switch n.Kind {
	case yaml.ScalarNode:
		prog, err := expr.Compile(n.Value)
		if err != nil {
			p.errf(n, field, "%v", err)
			return falseCond{}
		}
		return exprCond{p: prog, profile: readsProfile(n.Value)}
	case yaml.MappingNode:
		return p.structured(n, field)
	}
	p.errf(n, field, "want an expression or one of {did}, {all}, {any}, {not}, {in_segment}")
	return falseCond{}
}

func (p *parser) structured(n *yaml.Node, field string) cond {
	f := p.mapping(n, field, "did", "since", "within", "where", "count", "all", "any", "not", "in_segment")
	if countSet(f, "did", "all", "any", "not", "in_segment") != 1 {
		p.errf(n, field, "want exactly one of did, all, any, not or in_segment")
		return falseCond{}
	}
	if f["did"] == nil {
		for _, k := range []string{"since", "within", "where", "count"} {
			if f[k] != nil {
				p.errf(f[k], join(field, k), "only for did conditions")
			}
		}
	}
	switch {
	case f["did"] != nil:
		return p.did(f, field)
	case f["in_segment"] != nil:
		return inSegmentCond{p.segmentRef(f["in_segment"], join(field, "in_segment"))}
	case f["not"] != nil:
		return notCond{p.cond(f["not"], join(field, "not"))}
	case f["all"] != nil:
		return allCond(p.conds(f["all"], join(field, "all")))
	default:
		return anyCond(p.conds(f["any"], join(field, "any")))
	}
}

func (p *parser) conds(n *yaml.Node, field string) []cond {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errf(n, field, "want a non-empty list of conditions")
		return nil
	}
	out := make([]cond, 0, len(n.Content))
	for i, c := range n.Content {
		out = append(out, p.cond(c, idx(field, i)))
	}
	return out
}

func (p *parser) did(f map[string]*yaml.Node, field string) cond {
	d := &didCond{event: p.str(f["did"], join(field, "did"), true), op: ">=", n: 1}
	switch {
	case f["since"] != nil && f["within"] == nil:
		if s := p.str(f["since"], join(field, "since"), true); s != "entry" {
			p.errf(f["since"], join(field, "since"), "want entry, got %q", s)
		}
		d.sinceEntry = true
	case f["within"] != nil && f["since"] == nil:
		d.within = p.duration(f["within"], join(field, "within"))
	default:
		p.errf(f["did"], field, "a did condition needs exactly one of since: entry or within: duration")
	}
	if f["where"] != nil {
		d.where = p.cond(f["where"], join(field, "where"))
	}
	if c := f["count"]; c != nil {
		op, n, err := parseCount(p.str(c, join(field, "count"), true))
		if err != nil {
			p.errf(c, join(field, "count"), "%v", err)
		}
		d.op, d.n = op, n
	}
	return d
}

var countOps = []string{">=", "<=", "==", "!=", ">", "<"} // longest first

// parseCount parses a count comparison such as ">= 2" or "== 0"; a bare
// number n means ">= n".
func parseCount(s string) (string, int, error) {
	s = strings.TrimSpace(s)
	op := ">="
	for _, o := range countOps {
		if strings.HasPrefix(s, o) {
			op, s = o, strings.TrimSpace(s[len(o):])
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return ">=", 1, errBadCount
	}
	return op, n, nil
}
