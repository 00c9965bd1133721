package journey

import (
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/cairn-cjo/cairn/operators/defs"
	"github.com/cairn-cjo/cairn/operators/expr"
)

var journeyFields = []string{"kind", "id", "version", "status", "description",
	"entry", "holdout", "exit_on", "goal", "start", "nodes"}

// parseJourney decodes and validates one journey document. segments is
// the set of known segment ids, nil to accept any well-formed id. It
// returns the definition (possibly partial) and every problem found.
func parseJourney(doc *defs.Doc, segments map[string]bool) (*journeyDef, []error) {
	p := &parser{doc: doc, segments: segments}
	f := p.mapping(doc.Node, "", journeyFields...)
	j := &journeyDef{file: doc.File, nodes: map[string]*node{}, version: 1, status: statusActive}
	j.id = p.id(f["id"], "id")
	if n := f["version"]; n != nil {
		j.version = p.integer(n, "version", 1, 1<<30)
	}
	if n := f["status"]; n != nil {
		switch s := status(p.str(n, "status", true)); s {
		case statusActive, statusPaused, statusStopped:
			j.status = s
		default:
			p.errf(n, "status", "want active, paused or stopped, got %q", s)
		}
	}
	p.entry(j, f["entry"])
	j.holdout = p.number(f["holdout"], "holdout", 0, 100)
	for i, n := range p.seq(f["exit_on"], "exit_on") {
		j.exitOn = append(j.exitOn, p.eventMatch(n, idx("exit_on", i)))
	}
	if n := f["goal"]; n != nil {
		j.goal = &goalSpec{eventMatch: p.eventMatch(n, "goal", "within")}
		if w := defs.Field(n, "within"); w != nil {
			j.goal.within = p.duration(w, "goal.within")
		}
	}
	if j.holdout > 0 && (j.goal == nil || j.goal.within == 0) {
		p.errf(f["holdout"], "holdout", "a holdout needs goal.within to measure conversions against")
	}
	p.nodes(j, f["nodes"])
	j.start = p.str(f["start"], "start", false)
	if j.start == "" && len(j.order) > 0 {
		j.start = j.order[0]
	}
	p.graph(j, f)
	return j, p.errs
}

// eventMatch decodes "name" or {event: name, where: cond, extra...}; the
// caller decodes the extra fields.
func (p *parser) eventMatch(n *yaml.Node, field string, extra ...string) eventMatch {
	if n.Kind == yaml.ScalarNode {
		return eventMatch{event: p.str(n, field, true)}
	}
	f := p.mapping(n, field, append([]string{"event", "where"}, extra...)...)
	m := eventMatch{event: p.str(f["event"], join(field, "event"), true)}
	if f["where"] != nil {
		m.where = p.cond(f["where"], join(field, "where"))
	}
	return m
}

var nodeFields = []string{"description", "next", "wait", "branch", "split", "action", "exit"}

func (p *parser) nodes(j *journeyDef, n *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		p.errf(n, "nodes", "want a mapping of node id to node, with at least one node")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := "nodes." + k.Value
		id := p.id(k, field)
		if _, dup := j.nodes[id]; dup {
			p.errf(k, field, "duplicate node id")
			continue
		}
		nd := p.node(id, v, field)
		nd.src = k
		j.nodes[id] = nd
		j.order = append(j.order, id)
	}
}

func (p *parser) node(id string, n *yaml.Node, field string) *node {
	nd := &node{id: id}
	f := p.mapping(n, field, nodeFields...)
	nd.next = p.str(f["next"], join(field, "next"), false)
	var kinds []string
	for _, k := range []string{"wait", "branch", "split", "action", "exit"} {
		if f[k] != nil {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) != 1 {
		p.errf(n, field, "want exactly one of wait, branch, split, action or exit, got %v", kinds)
		return nd
	}
	switch kinds[0] {
	case "wait":
		nd.kind = kindWait
		p.wait(nd, f["wait"], join(field, "wait"))
	case "branch":
		nd.kind = kindBranch
		p.branch(nd, f["branch"], join(field, "branch"))
	case "split":
		nd.kind = kindSplit
		p.split(nd, f["split"], join(field, "split"))
	case "action":
		nd.kind = kindAction
		p.action(nd, f["action"], join(field, "action"))
	case "exit":
		nd.kind = kindExit
		if nd.next != "" {
			p.errf(f["next"], join(field, "next"), "an exit node has no next")
		}
	}
	return nd
}

func (p *parser) wait(nd *node, n *yaml.Node, field string) {
	w := &nd.wait
	if n.Kind == yaml.ScalarNode {
		w.kind, w.dur = waitFor, p.duration(n, field)
		return
	}
	f := p.mapping(n, field, "until", "for_event", "where", "timeout", "on_event", "on_timeout")
	switch {
	case f["until"] != nil && f["for_event"] == nil:
		w.kind, w.until = waitUntil, p.clock(f["until"], join(field, "until"))
		for _, k := range []string{"where", "timeout", "on_event", "on_timeout"} {
			if f[k] != nil {
				p.errf(f[k], join(field, k), "only for for_event waits")
			}
		}
	case f["for_event"] != nil && f["until"] == nil:
		w.kind = waitEvent
		w.event.event = p.str(f["for_event"], join(field, "for_event"), true)
		if f["where"] != nil {
			w.event.where = p.cond(f["where"], join(field, "where"))
		}
		if f["timeout"] != nil {
			w.timeout = p.duration(f["timeout"], join(field, "timeout"))
		}
		w.onEvent = firstNonEmpty(p.str(f["on_event"], join(field, "on_event"), false), nd.next)
		w.onTimeout = firstNonEmpty(p.str(f["on_timeout"], join(field, "on_timeout"), false), nd.next)
	default:
		p.errf(n, field, "want a duration, {until: HH:MM} or {for_event: name, ...}")
	}
}

func (p *parser) branch(nd *node, n *yaml.Node, field string) {
	items := p.seq(n, field)
	if n.Kind != yaml.SequenceNode || len(items) == 0 {
		p.errf(n, field, "want a list of {when, next} and an optional {else}")
		return
	}
	for i, it := range items {
		fi := idx(field, i)
		f := p.mapping(it, fi, "when", "next", "else")
		if e := f["else"]; e != nil {
			if i != len(items)-1 || f["when"] != nil || f["next"] != nil {
				p.errf(e, fi, "else must be alone and last")
			}
			nd.elseNext = p.str(e, join(fi, "else"), true)
			continue
		}
		if f["when"] == nil {
			p.errf(it, fi, "missing when")
			continue
		}
		nd.branches = append(nd.branches, branchArm{
			when: p.cond(f["when"], join(fi, "when")),
			next: p.str(f["next"], join(fi, "next"), false),
		})
	}
}

func (p *parser) split(nd *node, n *yaml.Node, field string) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.errf(n, field, "want a list of {weight, next}")
		return
	}
	sum := 0
	for i, it := range n.Content {
		fi := idx(field, i)
		f := p.mapping(it, fi, "weight", "next")
		w := p.integer(f["weight"], join(fi, "weight"), 0, 100)
		if f["weight"] == nil {
			p.errf(it, join(fi, "weight"), "missing")
		}
		sum += w
		nd.splits = append(nd.splits, splitArm{weight: w, next: p.str(f["next"], join(fi, "next"), false)})
	}
	if sum != 100 {
		p.errf(n, field, "weights sum to %d, want 100", sum)
	}
}

func (p *parser) action(nd *node, n *yaml.Node, field string) {
	f := p.mapping(n, field, "channel", "template", "params", "transactional")
	a := &nd.action
	a.channel = p.id(f["channel"], join(field, "channel"))
	a.template = p.str(f["template"], join(field, "template"), true)
	a.transactional = p.boolean(f["transactional"], join(field, "transactional"))
	a.params = map[string]*expr.Template{}
	pm := f["params"]
	if pm == nil {
		return
	}
	if pm.Kind != yaml.MappingNode {
		p.errf(pm, join(field, "params"), "must be a mapping of name to template")
		return
	}
	for i := 0; i+1 < len(pm.Content); i += 2 {
		k, v := pm.Content[i].Value, pm.Content[i+1]
		pf := join(field, "params."+k)
		t, err := expr.CompileTemplate(p.str(v, pf, false))
		if err != nil {
			p.errf(v, pf, "%v", err)
			continue
		}
		a.params[k] = t
		a.profile = a.profile || readsProfile(v.Value)
		a.paramKeys = append(a.paramKeys, k)
	}
	sort.Strings(a.paramKeys)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
