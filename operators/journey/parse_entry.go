package journey

import (
	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/segment"
)

// entry decodes the entry block: exactly one of event, segment and
// schedule, then when and reentry.
func (p *parser) entry(j *journeyDef, n *yaml.Node) {
	if n == nil {
		p.errf(nil, "entry", "missing")
		return
	}
	f := p.mapping(n, "entry", "event", "segment", "schedule", "when", "reentry")
	switch forms := countSet(f, "event", "segment", "schedule"); {
	case forms != 1:
		p.errf(n, "entry", "want exactly one of event, segment or schedule")
	case f["event"] != nil:
		j.entryEvent = p.str(f["event"], "entry.event", true)
	case f["segment"] != nil:
		j.entryEvent, j.entrySegment = p.segmentEntry(f["segment"], "entry.segment")
	default:
		j.schedule = p.schedule(f["schedule"], "entry.schedule")
	}
	if f["when"] != nil {
		j.entryWhen = p.cond(f["when"], "entry.when")
	}
	p.reentry(j, f["reentry"])
}

func (p *parser) reentry(j *journeyDef, r *yaml.Node) {
	switch s := p.str(r, "entry.reentry", false); s {
	case "", "never":
		j.reentry = reentryNever
	case "after_exit":
		j.reentry = reentryAfterExit
	default:
		ms, err := parseDuration(s)
		if err != nil {
			p.errf(r, "entry.reentry", "want never, after_exit or a duration, got %q", s)
		}
		j.reentry, j.reentryAfter = reentryDuration, ms
	}
}

// segmentEntry decodes {enter: id} or {exit: id} into the internal event
// name and the segment id.
func (p *parser) segmentEntry(n *yaml.Node, field string) (event, id string) {
	f := p.mapping(n, field, "enter", "exit")
	switch {
	case n.Kind != yaml.MappingNode:
		return "", "" // reported by mapping
	case countSet(f, "enter", "exit") != 1:
		p.errf(n, field, "want exactly one of enter or exit")
		return "", ""
	case f["enter"] != nil:
		return segment.EventEnter, p.segmentRef(f["enter"], join(field, "enter"))
	default:
		return segment.EventExit, p.segmentRef(f["exit"], join(field, "exit"))
	}
}

// schedule decodes {cron, timezone, segment}.
func (p *parser) schedule(n *yaml.Node, field string) *scheduleSpec {
	f := p.mapping(n, field, "cron", "timezone", "segment")
	if n.Kind != yaml.MappingNode {
		return nil // reported by mapping
	}
	expr := p.str(f["cron"], join(field, "cron"), true)
	zone := p.str(f["timezone"], join(field, "timezone"), false)
	seg := p.segmentRef(f["segment"], join(field, "segment"))
	if expr == "" {
		return nil
	}
	loc, err := loadZone(zone)
	if err != nil {
		p.errf(f["timezone"], join(field, "timezone"), "%v", err)
		return nil
	}
	s, err := parseSchedule(expr, zone, loc, seg)
	if err != nil {
		p.errf(f["cron"], join(field, "cron"), "%v", err)
		return nil
	}
	return s
}

// segmentRef decodes a segment id: well formed and, when the defined
// segments are known, one of them.
func (p *parser) segmentRef(n *yaml.Node, field string) string {
	id := p.str(n, field, true)
	switch {
	case id == "":
	case !segment.ValidID(id):
		p.errf(n, field, "bad segment id %q", id)
	case p.segments != nil && !p.segments[id]:
		p.errf(n, field, "unknown segment %q", id)
	}
	return id
}

// countSet counts the keys of f that are present.
func countSet(f map[string]*yaml.Node, keys ...string) int {
	n := 0
	for _, k := range keys {
		if f[k] != nil {
			n++
		}
	}
	return n
}
