package journey

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// graph checks the node graph of j: the start and every next name a node,
// there is no cycle (so stepping through nodes always terminates and each
// node runs at most once per entry, which keeps action ids unique), and
// every node is reachable from the start.
func (p *parser) graph(j *journeyDef, f map[string]*yaml.Node) {
	if len(j.nodes) == 0 {
		return
	}
	if _, ok := j.nodes[j.start]; !ok {
		p.errf(f["start"], "start", "unknown node %q", j.start)
		return
	}
	bad := false
	for _, id := range j.order {
		nd := j.nodes[id]
		for _, s := range nd.successors() {
			if _, ok := j.nodes[s]; !ok {
				p.errf(nd.src, "nodes."+id, "unknown node %q", s)
				bad = true
			}
		}
	}
	if bad {
		return
	}
	p.cycles(j)
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		for _, s := range j.nodes[id].successors() {
			visit(s)
		}
	}
	visit(j.start)
	for _, id := range j.order {
		if !seen[id] {
			p.errf(j.nodes[id].src, "nodes."+id, "unreachable node: no path from start %q", j.start)
		}
	}
}

// cycles reports each cycle once, at the node that closes it.
func (p *parser) cycles(j *journeyDef) {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var path []string
	var dfs func(id string)
	dfs = func(id string) {
		color[id] = grey
		path = append(path, id)
		for _, s := range j.nodes[id].successors() {
			switch color[s] {
			case white:
				dfs(s)
			case grey:
				i := len(path) - 1
				for path[i] != s {
					i--
				}
				loop := append(append([]string(nil), path[i:]...), s)
				p.errf(j.nodes[id].src, "nodes."+id, "cycle: %s", strings.Join(loop, " -> "))
			}
		}
		path = path[:len(path)-1]
		color[id] = black
	}
	for _, id := range j.order {
		if color[id] == white {
			dfs(id)
		}
	}
}
