package journey

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

// The property test runs random event logs through the operator and
// through refInterp, a deliberately naive interpreter written from the
// documented semantics for a restricted class of journeys (duration waits,
// branches on did ... within ... count, actions, exit_on, reentry
// after_exit, no policies). Both must produce the same actions.

type refNode struct {
	kind     string // wait, branch, action
	dur      int64
	did      string
	within   int64
	count    int
	next     int // index, -1 exits
	elseNext int
}

type refJourney struct {
	id     string
	entry  string
	exitOn []string
	nodes  []refNode
}

var propEvents = []string{"ea", "eb", "ec", "ed"}

func genJourney(rng *rand.Rand, id string) refJourney {
	j := refJourney{id: id, entry: propEvents[rng.IntN(len(propEvents))]}
	for _, e := range propEvents {
		if e != j.entry && rng.IntN(4) == 0 {
			j.exitOn = append(j.exitOn, e)
		}
	}
	n := 2 + rng.IntN(5)
	later := func(i int) int { // a later node or exit: the graph is acyclic
		k := i + 1 + rng.IntN(n-i)
		if k >= n {
			return -1
		}
		return k
	}
	for i := 0; i < n; i++ {
		nd := refNode{next: later(i)}
		switch rng.IntN(3) {
		case 0:
			nd.kind, nd.dur = "wait", int64(1+rng.IntN(10))*60_000
		case 1:
			nd.kind, nd.did = "branch", propEvents[rng.IntN(len(propEvents))]
			nd.within, nd.count, nd.elseNext = int64(1+rng.IntN(30))*60_000, 1+rng.IntN(2), later(i)
		default:
			nd.kind = "action"
		}
		j.nodes = append(j.nodes, nd)
	}
	return j
}

func (j refJourney) yaml() string {
	name := func(i int) string { return fmt.Sprintf("n%d", i) }
	var b strings.Builder
	fmt.Fprintf(&b, "kind: journey\nid: %s\nentry: {event: %s, reentry: after_exit}\n", j.id, j.entry)
	if len(j.exitOn) > 0 {
		fmt.Fprintf(&b, "exit_on: [%s]\n", strings.Join(j.exitOn, ", "))
	}
	b.WriteString("nodes:\n")
	reach := j.reachable()
	for i, n := range j.nodes {
		if !reach[i] {
			continue // New rejects unreachable nodes
		}
		fmt.Fprintf(&b, "  %s:\n", name(i))
		switch n.kind {
		case "wait":
			fmt.Fprintf(&b, "    wait: %dms\n", n.dur)
		case "branch":
			fmt.Fprintf(&b, "    branch:\n      - when: {did: %s, within: %dms, count: \">= %d\"}\n", n.did, n.within, n.count)
			if n.next >= 0 {
				fmt.Fprintf(&b, "        next: %s\n", refName(n.next))
			}
			if n.elseNext >= 0 {
				fmt.Fprintf(&b, "      - else: %s\n", refName(n.elseNext))
			}
		case "action":
			fmt.Fprintf(&b, "    action: {channel: push, template: t%d}\n", i)
		}
		if n.kind != "branch" && n.next >= 0 {
			fmt.Fprintf(&b, "    next: %s\n", refName(n.next))
		}
	}
	return b.String()
}

func (j refJourney) reachable() map[int]bool {
	seen := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if i < 0 || seen[i] {
			return
		}
		seen[i] = true
		visit(j.nodes[i].next)
		if j.nodes[i].kind == "branch" {
			visit(j.nodes[i].elseNext)
		}
	}
	visit(0)
	return seen
}

func refName(i int) string { return fmt.Sprintf("n%d", i) }

type refInst struct {
	active  bool
	node    int
	due     int64 // 0: no timer
	seq     int
	entryTS int64
}

type refEvent struct {
	user, name string
	ts         int64
}

// refInterp is the reference: all events are kept, timers are a scan for
// the smallest due time.
type refInterp struct {
	journeys []refJourney
	insts    map[string]*refInst // journey/user
	hist     map[string][]refEvent
	out      []string
}

func (r *refInterp) inst(j, u string) *refInst {
	k := j + "/" + u
	if r.insts[k] == nil {
		r.insts[k] = &refInst{}
	}
	return r.insts[k]
}

func (r *refInterp) fireUpTo(t int64) {
	for {
		var best string
		var bestDue int64
		for k, in := range r.insts {
			if in.active && in.due != 0 && in.due <= t && (best == "" || in.due < bestDue || in.due == bestDue && k < best) {
				best, bestDue = k, in.due
			}
		}
		if best == "" {
			return
		}
		jid, user, _ := strings.Cut(best, "/")
		in := r.insts[best]
		in.due = 0
		j := r.journey(jid)
		r.step(j, user, in, j.nodes[in.node].next, bestDue)
	}
}

func (r *refInterp) journey(id string) refJourney {
	for _, j := range r.journeys {
		if j.id == id {
			return j
		}
	}
	panic(id)
}

func (r *refInterp) event(ev refEvent) {
	r.fireUpTo(ev.ts)
	r.hist[ev.user] = append(r.hist[ev.user], ev)
	for _, j := range r.journeys {
		in := r.inst(j.id, ev.user)
		if in.active && slices.Contains(j.exitOn, ev.name) {
			in.active, in.due = false, 0
		}
		if !in.active && ev.name == j.entry {
			in.active, in.seq, in.entryTS = true, in.seq+1, ev.ts
			r.step(j, ev.user, in, 0, ev.ts)
		}
	}
}

func (r *refInterp) step(j refJourney, user string, in *refInst, i int, now int64) {
	for i >= 0 {
		n := j.nodes[i]
		in.node = i
		switch n.kind {
		case "wait":
			in.due = now + n.dur
			return
		case "action":
			r.out = append(r.out, fmt.Sprintf("%s@%d", ActionID(j.id, 1, user, uint32(in.seq), refName(i)), now))
			i = n.next
		case "branch":
			c := 0
			for _, h := range r.hist[user] {
				if h.name == n.did && h.ts >= now-n.within && h.ts <= now {
					c++
				}
			}
			if c >= n.count {
				i = n.next
			} else {
				i = n.elseNext
			}
		}
	}
	in.active = false
}

func TestPropertyReference(t *testing.T) {
	iterations := 150
	if testing.Short() {
		iterations = 30
	}
	total := 0
	for seed := 0; seed < iterations; seed++ {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		var js []refJourney
		var src []string
		for i := 0; i < 1+rng.IntN(3); i++ {
			j := genJourney(rng, fmt.Sprintf("j%d", i))
			js = append(js, j)
			src = append(src, j.yaml())
		}
		log := genLog(rng)
		want := runRef(js, log)
		got, err := runOperator(strings.Join(src, "---\n"), log)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, strings.Join(src, "---\n"))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: operator and reference differ\ndefinitions:\n%s\nevents: %v\noperator:  %v\nreference: %v",
				seed, strings.Join(src, "---\n"), log, got, want)
		}
		total += len(want)
	}
	if total < iterations {
		t.Fatalf("only %d actions in %d runs: the generator hardly exercises the operator", total, iterations)
	}
	t.Logf("%d runs, %d actions agreed", iterations, total)
}

func genLog(rng *rand.Rand) []refEvent {
	users := []string{"u1", "u2", "u3"}
	ts := int64(1_700_000_000_000)
	var log []refEvent
	for i := 0; i < 20+rng.IntN(60); i++ {
		if rng.IntN(4) != 0 {
			ts += int64(rng.IntN(6)) * 60_000 // whole minutes: events land on window edges and due times
		}
		log = append(log, refEvent{users[rng.IntN(len(users))], propEvents[rng.IntN(len(propEvents))], ts})
	}
	return log
}

const propEnd = int64(1_800_000_000_000)

func runRef(js []refJourney, log []refEvent) []string {
	r := &refInterp{journeys: js, insts: map[string]*refInst{}, hist: map[string][]refEvent{}}
	for _, ev := range log {
		r.event(ev)
	}
	r.fireUpTo(propEnd)
	sort.Strings(r.out)
	return r.out
}

func runOperator(src string, log []refEvent) ([]string, error) {
	docs, err := defs.Parse("prop.yaml", []byte(src))
	if err != nil {
		return nil, err
	}
	op, err := New(docs, Options{})
	if err != nil {
		return nil, err
	}
	l, err := engine.NewLocal(0, op)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	var got []string
	collect := func(outs []engine.Output) {
		for _, o := range outs {
			if o.Topic == "actions.push" {
				var a Action
				_ = json.Unmarshal(o.Value, &a)
				got = append(got, fmt.Sprintf("%s@%d", a.ActionID, a.TS))
			}
		}
	}
	for _, ev := range log {
		outs, err := l.Process(engine.Event{UserID: ev.user, Name: ev.name, TS: ev.ts})
		if err != nil {
			return nil, err
		}
		collect(outs)
	}
	outs, err := l.AdvanceTo(propEnd)
	if err != nil {
		return nil, err
	}
	collect(outs)
	sort.Strings(got)
	return got, nil
}
