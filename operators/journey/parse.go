package journey

import (
	"fmt"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/defs"
)

var idPattern = regexp.MustCompile(`^[a-z0-9-]+$`)

// parser decodes one document, collecting every problem instead of stopping
// at the first, so that a user fixes a file in one round.
type parser struct {
	doc      *defs.Doc
	segments map[string]bool // known segment ids; nil: any well-formed id
	errs     []error
}

func (p *parser) errf(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, p.doc.Errorf(n, field, format, args...))
}

// mapping checks that n is a mapping whose keys are all in allowed and
// returns its fields by key. A nil n gives an empty map.
func (p *parser) mapping(n *yaml.Node, field string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		p.errf(n, field, "must be a mapping")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !contains(allowed, k) {
			p.errf(n.Content[i], join(field, k), "unknown field (allowed: %v)", allowed)
			continue
		}
		if _, dup := out[k]; dup {
			p.errf(n.Content[i], join(field, k), "duplicate field")
		}
		out[k] = n.Content[i+1]
	}
	return out
}

func (p *parser) str(n *yaml.Node, field string, required bool) string {
	if n == nil {
		if required {
			p.errf(nil, field, "missing")
		}
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errf(n, field, "must be a string")
		return ""
	}
	if required && n.Value == "" {
		p.errf(n, field, "must not be empty")
	}
	return n.Value
}

func (p *parser) id(n *yaml.Node, field string) string {
	s := p.str(n, field, true)
	if s != "" && !idPattern.MatchString(s) {
		p.errf(n, field, "bad id %q: want [a-z0-9-]+", s)
	}
	return s
}

func (p *parser) number(n *yaml.Node, field string, lo, hi float64) float64 {
	if n == nil {
		return 0
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	if n.Kind != yaml.ScalarNode || err != nil || f < lo || f > hi {
		p.errf(n, field, "want a number from %g to %g, got %q", lo, hi, n.Value)
		return 0
	}
	return f
}

func (p *parser) integer(n *yaml.Node, field string, lo, hi int) int {
	if n == nil {
		return 0
	}
	i, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || i < lo || i > hi {
		p.errf(n, field, "want an integer from %d to %d, got %q", lo, hi, n.Value)
		return 0
	}
	return i
}

func (p *parser) boolean(n *yaml.Node, field string) bool {
	if n == nil {
		return false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		p.errf(n, field, "want true or false, got %q", n.Value)
	}
	return b
}

func (p *parser) duration(n *yaml.Node, field string) int64 {
	s := p.str(n, field, true)
	if s == "" {
		return 0
	}
	ms, err := parseDuration(s)
	if err != nil {
		p.errf(n, field, "bad duration %q: %v", s, err)
	}
	return ms
}

func (p *parser) clock(n *yaml.Node, field string) int {
	s := p.str(n, field, true)
	if s == "" {
		return 0
	}
	m, err := parseClock(s)
	if err != nil {
		p.errf(n, field, "bad time of day: %v", err)
	}
	return m
}

// seq returns the items of a sequence node; a scalar counts as a sequence of
// one, so that "exit_on: purchase" and "exit_on: [purchase]" both work.
func (p *parser) seq(n *yaml.Node, field string) []*yaml.Node {
	switch {
	case n == nil:
		return nil
	case n.Kind == yaml.SequenceNode:
		return n.Content
	case n.Kind == yaml.ScalarNode || n.Kind == yaml.MappingNode:
		return []*yaml.Node{n}
	}
	p.errf(n, field, "must be a list")
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func idx(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }
