package journey

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

// OperatorName is the operator's state namespace (engine.Operator.Name):
// scan a user's state under it to call DescribeUser.
const OperatorName = "journey"

// Operator runs every loaded journey and applies every loaded policy. It
// implements engine.Operator and engine.TopicDeclarer.
//
// An Operator is immutable after New, apart from a cache of time zones that
// is safe for concurrent use, so one value serves all partitions' workers
// concurrently. All mutable state lives in the engine.Context.
type Operator struct {
	opts     Options
	journeys map[string]*journeySet
	ids      []string            // sorted journey ids
	byEvent  map[string][]string // event name -> sorted ids of journeys it can affect
	// bySegment: segmentKey(event, segment) -> sorted ids of journeys that
	// enter on that segment's $segment_enter or $segment_exit, so that a
	// membership change costs a record read only in the journeys of its
	// segment.
	bySegment map[string][]string
	hist      map[string]*histSpec
	stopped   []string // sorted ids of journeys with a stopped version
	scheduled []string // sorted ids of journeys whose current version is a broadcast
	schedFP   string   // fingerprint of the scheduled journeys and their schedules
	events    []string // sorted; nil when stopped or scheduled is not empty (every event)
	topics    []string
	policy    policySet

	locs  sync.Map     // tz name -> *time.Location; a cache of pure lookups
	nlocs atomic.Int32 // entries in locs, bounded by maxCachedZones
}

// maxCachedZones bounds the time zone cache: there are about 600 IANA
// names, and profiles are user input, so junk names must not grow it
// without limit.
const maxCachedZones = 2048

// journeySet holds every loaded version of one journey id.
type journeySet struct {
	id       string
	versions map[int]*journeyDef
	current  *journeyDef // highest active version, or nil: no new entries
}

// histSpec says how long the did-history of one event name must be kept.
type histSpec struct {
	maxWithin int64    // longest within of a did condition on the name, ms
	since     []string // sorted ids of journeys with a "since: entry" did on it
	props     bool     // some did on it has a where, so props are kept
}

// New compiles the documents of kind "journey" and "policy" in docs; other
// kinds are ignored. Several versions of one journey id may be loaded, each
// from its own document. On failure it returns every problem found, joined
// with errors.Join, each a *defs.Error locating it.
func New(docs []defs.Doc, opts Options) (*Operator, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := &Operator{opts: opts, journeys: map[string]*journeySet{}}
	var known map[string]bool
	if opts.Segments != nil {
		known = make(map[string]bool, len(opts.Segments))
		for _, id := range opts.Segments {
			known[id] = true
		}
	}
	var errs []error
	for i := range docs {
		d := &docs[i]
		switch d.Kind {
		case "journey":
			j, es := parseJourney(d, known)
			errs = append(errs, es...)
			if len(es) == 0 {
				errs = append(errs, o.add(d, j)...)
			}
		case "policy":
			errs = append(errs, parsePolicy(d, &o.policy)...)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	o.index()
	return o, nil
}

func (o *Operator) add(d *defs.Doc, j *journeyDef) []error {
	s := o.journeys[j.id]
	if s == nil {
		s = &journeySet{id: j.id, versions: map[int]*journeyDef{}}
		o.journeys[j.id] = s
	}
	if prev, dup := s.versions[j.version]; dup {
		return []error{d.Errorf(defs.Field(d.Node, "version"), "version",
			"journey %q version %d is already defined in %s", j.id, j.version, prev.file)}
	}
	s.versions[j.version] = j
	return nil
}

// index builds the lookup tables that keep the cost of an event down to
// the journeys that mention its name.
func (o *Operator) index() {
	o.byEvent = map[string][]string{}
	o.bySegment = map[string][]string{}
	o.hist = map[string]*histSpec{}
	channels := map[string]bool{}
	for id, s := range o.journeys {
		o.ids = append(o.ids, id)
		for _, j := range s.versions {
			if j.status == statusActive && (s.current == nil || j.version > s.current.version) {
				s.current = j
			}
			if j.status == statusStopped {
				o.stopped = append(o.stopped, id)
			}
			o.indexDef(j, channels)
		}
	}
	sort.Strings(o.ids)
	o.stopped = sortedUnique(o.stopped)
	for _, m := range []map[string][]string{o.byEvent, o.bySegment} {
		for k, ids := range m {
			m[k] = sortedUnique(ids)
		}
	}
	for _, h := range o.hist {
		h.since = sortedUnique(h.since)
	}
	o.indexSchedules()
	if len(o.stopped) == 0 && len(o.scheduled) == 0 {
		o.events = sortedUnique(append(sortedKeys(o.byEvent, o.hist), segmentEventNames(o.bySegment)...))
	}
	for ch := range channels {
		o.topics = append(o.topics, o.opts.ActionTopicPrefix+ch)
	}
	o.topics = sortedUnique(append(o.topics, o.opts.SuppressedTopic))
}

func (o *Operator) indexDef(j *journeyDef, channels map[string]bool) {
	mention := func(name string) { o.byEvent[name] = append(o.byEvent[name], j.id) }
	conds := []cond{j.entryWhen}
	switch {
	case j.entrySegment != "":
		k := segmentKey(j.entryEvent, j.entrySegment)
		o.bySegment[k] = append(o.bySegment[k], j.id)
	case j.entryEvent != "":
		mention(j.entryEvent)
	}
	for _, m := range j.exitOn {
		mention(m.event)
		conds = append(conds, m.where)
	}
	if j.goal != nil {
		mention(j.goal.event)
		conds = append(conds, j.goal.where)
	}
	for _, id := range j.order {
		n := j.nodes[id]
		if n.kind == kindWait && n.wait.kind == waitEvent {
			mention(n.wait.event.event)
			conds = append(conds, n.wait.event.where)
		}
		for _, b := range n.branches {
			conds = append(conds, b.when)
		}
		if n.kind == kindAction {
			channels[n.action.channel] = true
		}
	}
	for _, c := range conds {
		if c != nil {
			c.dids(func(d *didCond) { o.addHist(j.id, d) })
		}
	}
}

func (o *Operator) addHist(journey string, d *didCond) {
	h := o.hist[d.event]
	if h == nil {
		h = &histSpec{}
		o.hist[d.event] = h
	}
	h.maxWithin = max(h.maxWithin, d.within)
	if d.sinceEntry {
		h.since = append(h.since, journey)
	}
	h.props = h.props || d.where != nil
}

// Name returns OperatorName.
func (o *Operator) Name() string { return OperatorName }

// Events returns the sorted event names some journey mentions (entry,
// exit_on, goal, for_event) or a did condition counts. While a version is
// stopped it returns nil, so that every event reaches the operator and the
// stopped instances exit on their user's next event; and while a journey is
// a scheduled broadcast, so that a partition's first event arms its
// broadcast timer (broadcast.go).
func (o *Operator) Events() []string { return slices.Clone(o.events) }

// OutputTopics returns the action topic of every channel an action uses and
// the suppressed topic, sorted.
func (o *Operator) OutputTopics() []string { return slices.Clone(o.topics) }

// OnEvent records ev in the did-history if a condition counts its name, then
// runs every journey that mentions it, in journey id order.
func (o *Operator) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if err := o.armSchedules(ctx); err != nil {
		return fmt.Errorf("arming broadcasts: %w", err)
	}
	ids := o.journeysFor(ev)
	if len(ids) == 0 && o.hist[ev.Name] == nil {
		return nil
	}
	r := newRun(o, ctx, ev, ev.Cause())
	if o.expectedReads(ev, ids) >= o.opts.preloadMin {
		if err := r.preload(); err != nil {
			return err
		}
	}
	if err := r.recordHistory(ev); err != nil {
		return err
	}
	for _, id := range ids {
		if err := r.onEvent(id); err != nil {
			return fmt.Errorf("running journey %s: %w", id, err)
		}
	}
	return r.flush()
}

// expectedReads is how many of the user's keys OnEvent reads at least for
// ev: the record of each journey in ids, and the did-history of ev's name
// with the records of the journeys that prune it.
func (o *Operator) expectedReads(ev *engine.Event, ids []string) int {
	n := len(ids)
	if h := o.hist[ev.Name]; h != nil {
		n += 1 + len(h.since)
	}
	return n
}

// journeysFor returns the sorted ids of the journeys ev can affect.
func (o *Operator) journeysFor(ev *engine.Event) []string {
	ids := o.byEvent[ev.Name]
	if seg, ok := ev.Props[segmentProp].(string); ok && len(o.bySegment) > 0 {
		if more := o.bySegment[segmentKey(ev.Name, seg)]; len(more) > 0 {
			ids = sortedUnique(append(slices.Clone(ids), more...))
		}
	}
	if len(o.stopped) > 0 {
		ids = sortedUnique(append(slices.Clone(ids), o.stopped...))
	}
	return ids
}

// OnTimer resumes the instance the timer was set for: a wait that ended, a
// wait that timed out, an action deferred by quiet hours or the end of a
// holdout. A stale timer (its instance moved on or exited) is ignored. A
// partition's broadcast timer (id "b/<journey>") runs one slice of a
// scheduled broadcast instead.
func (o *Operator) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	if id, ok := strings.CutPrefix(t.ID, broadcastPrefix); ok {
		if err := o.onBroadcast(ctx, id, t); err != nil {
			return fmt.Errorf("broadcasting journey %s: %w", id, err)
		}
		return nil
	}
	var pl timerPayload
	if err := decode(t.Payload, &pl); err != nil {
		return fmt.Errorf("reading timer %s: %w", t.ID, err)
	}
	ev := &engine.Event{Name: "$timer", TS: t.Due, UserID: ctx.UserID(), Props: map[string]any{}}
	r := newRun(o, ctx, ev, t.Cause())
	if err := r.onTimer(pl); err != nil {
		return fmt.Errorf("running journey %s: %w", pl.Journey, err)
	}
	return r.flush()
}

// def returns version v of journey id, or nil if it is not loaded.
func (o *Operator) def(id string, v int) *journeyDef {
	if s := o.journeys[id]; s != nil {
		return s.versions[v]
	}
	return nil
}

// location resolves an IANA zone name; unknown or empty names give UTC.
func (o *Operator) location(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	if l, ok := o.locs.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		l = time.UTC
	}
	if o.nlocs.Add(1) <= maxCachedZones {
		o.locs.Store(name, l)
	}
	return l
}

// segmentKey keys bySegment: an internal segment event name and a segment.
func segmentKey(event, segment string) string { return event + "\x00" + segment }

// segmentEventNames returns the event names of bySegment's keys.
func segmentEventNames(m map[string][]string) []string {
	out := make([]string, 0, 2)
	for k := range m {
		name, _, _ := strings.Cut(k, "\x00")
		out = append(out, name)
	}
	return sortedUnique(out)
}

func sortedUnique(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

func sortedKeys[V1, V2 any](a map[string]V1, b map[string]V2) []string {
	out := make([]string, 0, len(a)+len(b))
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		out = append(out, k)
	}
	return sortedUnique(out)
}
