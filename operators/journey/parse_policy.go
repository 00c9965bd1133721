package journey

import (
	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/defs"
)

// policySet is the union of every loaded policy document. It is immutable
// after New and shared by all partitions.
type policySet struct {
	caps   []capRule
	quiet  []quietRule
	maxPer int64 // longest cap window, ms: how long sends are remembered
	maxMax int   // largest cap: how many sends per channel are remembered
}

// capRule allows at most max non-transactional actions on channel ("*":
// all channels together) in any window of per.
type capRule struct {
	policy  string
	channel string
	max     int
	per     int64
	perText string
}

// quietRule holds back non-transactional actions between start and end
// (minutes of day, wrapping at midnight) in the user's time zone.
type quietRule struct {
	policy     string
	start, end int
	drop       bool     // else defer to end
	channels   []string // empty: every channel
}

func parsePolicy(doc *defs.Doc, ps *policySet) []error {
	p := &parser{doc: doc}
	f := p.mapping(doc.Node, "", "kind", "id", "description", "frequency_caps", "quiet_hours")
	id := p.id(f["id"], "id")
	for i, n := range p.seq(f["frequency_caps"], "frequency_caps") {
		if c, ok := p.capRule(n, idx("frequency_caps", i)); ok {
			c.policy = id
			ps.caps = append(ps.caps, c)
			ps.maxPer, ps.maxMax = max(ps.maxPer, c.per), max(ps.maxMax, c.max)
		}
	}
	for i, n := range p.seq(f["quiet_hours"], "quiet_hours") {
		q := p.quietRule(n, idx("quiet_hours", i))
		q.policy = id
		ps.quiet = append(ps.quiet, q)
	}
	return p.errs
}

func (p *parser) capRule(n *yaml.Node, field string) (capRule, bool) {
	f := p.mapping(n, field, "channel", "max", "per")
	c := capRule{channel: p.str(f["channel"], join(field, "channel"), true)}
	if c.channel != "*" && c.channel != "" && !idPattern.MatchString(c.channel) {
		p.errf(f["channel"], join(field, "channel"), "bad id %q: want [a-z0-9-]+ or \"*\"", c.channel)
	}
	if f["max"] == nil {
		p.errf(n, join(field, "max"), "missing")
	}
	c.max = p.integer(f["max"], join(field, "max"), 1, 1000)
	c.per = p.duration(f["per"], join(field, "per"))
	if f["per"] != nil {
		c.perText = f["per"].Value
	}
	return c, c.per > 0 && c.max > 0
}

func (p *parser) quietRule(n *yaml.Node, field string) quietRule {
	f := p.mapping(n, field, "start", "end", "then", "channels")
	q := quietRule{start: p.clock(f["start"], join(field, "start")), end: p.clock(f["end"], join(field, "end"))}
	if f["start"] != nil && f["end"] != nil && q.start == q.end {
		p.errf(n, field, "start and end must differ")
	}
	for i, c := range p.seq(f["channels"], join(field, "channels")) {
		q.channels = append(q.channels, p.id(c, idx(join(field, "channels"), i)))
	}
	switch s := p.str(f["then"], join(field, "then"), false); s {
	case "", "defer":
	case "drop":
		q.drop = true
	default:
		p.errf(f["then"], join(field, "then"), "want defer or drop, got %q", s)
	}
	return q
}

// applies reports whether the rule holds back actions on channel.
func (q *quietRule) applies(channel string) bool {
	return len(q.channels) == 0 || contains(q.channels, channel)
}

// covers reports whether minute-of-day m is inside the quiet hours.
func (q *quietRule) covers(m int) bool {
	if q.start < q.end {
		return m >= q.start && m < q.end
	}
	return m >= q.start || m < q.end
}
