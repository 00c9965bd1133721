package segment

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"sort"
	"strings"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

// Names of the internal events the operator emits and the upload events it
// reads. Each carries props {"segment": id}.
const (
	EventEnter  = "$segment_enter"  // emitted when the user enters a segment
	EventExit   = "$segment_exit"   // emitted when the user leaves a segment
	EventAdd    = "$segment_add"    // puts the user on an uploaded list
	EventRemove = "$segment_remove" // takes the user off an uploaded list
)

// OperatorName is the operator's state namespace.
const OperatorName = "segment"

// DefaultAggregatesTopic is the default of Options.AggregatesTopic.
const DefaultAggregatesTopic = "cairn-aggregates"

// timerPrefix starts the id of a segment's window timer: "w/<segment>".
const timerPrefix = "w/"

// Options configures the operator.
type Options struct {
	// AggregatesTopic receives the per-partition segment sizes as upserts
	// keyed by SizeKey. Default DefaultAggregatesTopic.
	AggregatesTopic string
}

// EnsureDefaults fills in the zero fields.
func (o *Options) EnsureDefaults() {
	if o.AggregatesTopic == "" {
		o.AggregatesTopic = DefaultAggregatesTopic
	}
}

// Validate checks the options after EnsureDefaults.
func (o *Options) Validate() error {
	if !topicPattern.MatchString(o.AggregatesTopic) {
		return fmt.Errorf("validating segment options: bad aggregates topic %q", o.AggregatesTopic)
	}
	return nil
}

// topicPattern is Kafka's rule for topic names.
var topicPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

// segment is one compiled definition. It is immutable after New.
type segment struct {
	id      string
	ix      int          // position in topological order
	rule    *rule        // the definition's rule tree
	leaves  []*eventRule // the event rules of the tree
	feeds   []*eventRule // leaves with distinct counters: each event counts once
	list    bool         // the tree has a list rule
	profile bool         // the tree has a profile rule
	windows bool         // some leaf has a window: the segment has a timer
}

// Operator maintains segment membership. It implements engine.Operator.
//
// It holds only the compiled definitions, which are immutable, so one
// Operator is safe to share between partitions and goroutines; all mutable
// state is in the engine.Context. Each event costs O(segments it can
// change): a map lookup for an event no rule names.
type Operator struct {
	segs       []*segment // in topological order: after every segment they refer to
	byID       map[string]*segment
	byEvent    map[string][]*segment // event name -> segments with a rule on it
	dependents [][]int               // ix -> ixs of the segments that refer to it
	zeroTrue   []int                 // ixs of segments a user with no state is in
	defsFP     uint32                // fingerprint of all definitions; never 0
	events     []string
	topic      string
}

var _ engine.Operator = (*Operator)(nil)

// New compiles the documents of kind "segment" in docs (others are ignored).
// It returns every problem found, joined, each naming file:line: field.
func New(docs []defs.Doc, opts Options) (*Operator, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	parsed, err := parseDocs(docs)
	if err != nil {
		return nil, err
	}
	o := &Operator{byID: map[string]*segment{}, byEvent: map[string][]*segment{}, topic: opts.AggregatesTopic}
	for _, d := range topoSort(parsed) {
		o.add(d)
	}
	o.link()
	if err := o.findZeroTrue(); err != nil {
		return nil, err
	}
	o.events = o.eventNames()
	o.defsFP = o.fingerprint()
	return o, nil
}

func (o *Operator) add(d *segmentDef) {
	s := &segment{id: d.id, ix: len(o.segs), rule: d.rule}
	subs := map[string]bool{}
	d.rule.walk(func(r *rule) {
		switch r.kind {
		case ruleEvent:
			r.event.sub = counterKey(d.id, r.event)
			s.leaves = append(s.leaves, r.event)
			if !subs[string(r.event.sub)] {
				subs[string(r.event.sub)] = true
				s.feeds = append(s.feeds, r.event)
			}
			s.windows = s.windows || r.event.within > 0
		case ruleList:
			s.list = true
		case ruleProfile:
			s.profile = true
		}
	})
	o.segs = append(o.segs, s)
	o.byID[s.id] = s
}

// link resolves references and indexes segments by event name.
func (o *Operator) link() {
	o.dependents = make([][]int, len(o.segs))
	for _, s := range o.segs {
		names := map[string]bool{}
		s.rule.walk(func(r *rule) {
			switch r.kind {
			case ruleSegment:
				ref := o.byID[r.ref].ix
				if !containsInt(o.dependents[ref], s.ix) {
					o.dependents[ref] = append(o.dependents[ref], s.ix)
				}
			case ruleEvent:
				names[r.event.name] = true
			}
		})
		for _, n := range sortedKeys(names) {
			o.byEvent[n] = append(o.byEvent[n], s)
		}
	}
}

// findZeroTrue evaluates every rule for a user with no events, no profile
// and no lists. Such segments admit users on their first event of any kind.
func (o *Operator) findZeroTrue() error {
	in := []string{}
	for _, s := range o.segs {
		ok, err := evalRule(s.rule, s, &evalEnv{in: in})
		if err != nil {
			return fmt.Errorf("evaluating segment %s for an empty user: %w", s.id, err)
		}
		if ok {
			o.zeroTrue = append(o.zeroTrue, s.ix)
			in = append(in, s.id)
			sort.Strings(in)
		}
	}
	return nil
}

// fingerprint hashes every definition in canonical form, so that a user
// record can tell whether it was evaluated under the current definitions.
func (o *Operator) fingerprint() uint32 {
	h := fnv.New32a()
	for _, id := range o.IDs() {
		var b strings.Builder
		o.byID[id].rule.canonical(&b)
		fmt.Fprintf(h, "%s=%s\x00", id, b.String())
	}
	return h.Sum32() | 1 // never 0, the value of a new record
}

// eventNames is what Events returns: nil (every event) when some segment
// admits users with no state, so that every user the partition sees is
// evaluated; otherwise only the events that can change a membership.
func (o *Operator) eventNames() []string {
	if len(o.zeroTrue) > 0 {
		return nil
	}
	names := map[string]bool{}
	for n := range o.byEvent {
		names[n] = true
	}
	for _, s := range o.segs {
		if s.profile {
			names[engine.EventProfileSet], names[engine.EventProfileUnset] = true, true
		}
		if s.list {
			names[EventAdd], names[EventRemove] = true, true
		}
	}
	return sortedKeys(names)
}

// Name returns OperatorName.
func (o *Operator) Name() string { return OperatorName }

// Events lists the events that can change a membership; nil (all events)
// if a segment admits users that have no state (e.g. a top-level "not").
func (o *Operator) Events() []string { return o.events }

// OutputTopics declares the aggregates topic.
func (o *Operator) OutputTopics() []string { return []string{o.topic} }

// IDs returns the segment ids in dependency order. The slice is a copy.
func (o *Operator) IDs() []string {
	ids := make([]string, len(o.segs))
	for i, s := range o.segs {
		ids[i] = s.id
	}
	return ids
}

// Has reports whether id is a defined segment; journeys validate their
// segment references with it.
func (o *Operator) Has(id string) bool { _, ok := o.byID[id]; return ok }

// topoSort orders the definitions so that each comes after every segment it
// refers to; ties are broken by id so the order is deterministic. The
// references must be acyclic (checked by parseDocs).
func topoSort(ds []*segmentDef) []*segmentDef {
	byID := map[string]*segmentDef{}
	for _, d := range ds {
		byID[d.id] = d
	}
	ids := make([]string, 0, len(ds))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	done := map[string]bool{}
	var out []*segmentDef
	var visit func(id string)
	visit = func(id string) {
		if done[id] {
			return
		}
		done[id] = true
		var refs []string
		byID[id].rule.walk(func(r *rule) {
			if r.kind == ruleSegment {
				refs = append(refs, r.ref)
			}
		})
		sort.Strings(refs)
		for _, r := range refs {
			visit(r)
		}
		out = append(out, byID[id])
	}
	for _, id := range ids {
		visit(id)
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
