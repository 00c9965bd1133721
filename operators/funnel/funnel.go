// Package funnel implements Cairn's incremental funnels (docs/funnels.md):
// exact per-bucket conversion counts, updated on every event and emitted as
// upserts to the aggregates topic in the same transaction as the state that
// caused them.
//
// The operator keeps, per user and funnel, the step events of a bounded
// horizon and the depth already counted per (bucket, group); per partition,
// the counts of each (funnel, bucket, group). The query side (Row, DecodeRow,
// Query) sums the partitions' upserts read from the aggregates topic.
package funnel

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/bits"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
	cexpr "github.com/cairn-cjo/cairn/operators/expr"
)

// OperatorName is the operator's state namespace.
const OperatorName = "funnel"

// DefaultAggregatesTopic is the default of Options.AggregatesTopic.
const DefaultAggregatesTopic = "cairn-aggregates"

// Options configures New. The zero value is valid.
type Options struct {
	// AggregatesTopic receives the count upserts. Default
	// DefaultAggregatesTopic.
	AggregatesTopic string
}

// EnsureDefaults fills in zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.AggregatesTopic == "" {
		o.AggregatesTopic = DefaultAggregatesTopic
	}
}

// Operator runs every funnel definition as one engine.Operator. It is
// immutable after New except for its counters, which are atomic, so one
// Operator is safely shared by all partition workers.
type Operator struct {
	opts    Options
	funnels []*Definition            // sorted by id
	byEvent map[string][]*Definition // step event name -> funnels, by id
	byID    map[string]*Definition
	events  []string // sorted keys of byEvent

	nExprs       int              // distinct conditions and group_by expressions
	exprKeys     []string         // stored keys (exprKey), by index
	exprIdx      map[string]int   // the inverse of exprKeys
	nameIdx      map[string]int32 // index in events
	maxRetention int64            // the longest retention() of the funnels

	late       atomic.Int64
	evalErrors atomic.Int64
}

var (
	_ engine.Operator = (*Operator)(nil)
	_ engine.Flusher  = (*Operator)(nil)
)

// New parses the funnel documents of docs (others are ignored) and returns
// the operator running them. Errors name the file, line and field of every
// problem found.
func New(docs []defs.Doc, opts Options) (*Operator, error) {
	fs, err := Parse(docs)
	if err != nil {
		return nil, err
	}
	opts.EnsureDefaults()
	o := &Operator{opts: opts, funnels: fs, byEvent: map[string][]*Definition{}, events: []string{},
		byID: map[string]*Definition{}}
	exprs := map[string]int{} // "w:"/"g:" + source -> index
	index := func(key string) int {
		i, ok := exprs[key]
		if !ok {
			i = len(exprs)
			exprs[key] = i
		}
		return i
	}
	zones := map[string]*Definition{} // the first of each zone: one Location per zone, for bucketCache
	for _, f := range fs {
		o.byID[f.ID] = f
		if z, ok := zones[f.Timezone]; ok {
			f.loc, f.zoneSlot = z.loc, z.zoneSlot
		} else {
			f.zoneSlot = len(zones)
			zones[f.Timezone] = f
		}
		if f.groupProg != nil {
			f.groupIdx = index("g:" + f.GroupBy)
		}
		for i := range f.Steps {
			if f.Steps[i].cond != nil {
				f.Steps[i].exprIdx = index("w:" + f.Steps[i].When)
			}
		}
		for name := range f.stepsNamed {
			o.byEvent[name] = append(o.byEvent[name], f)
		}
	}
	for name := range o.byEvent {
		o.events = append(o.events, name)
	}
	sort.Strings(o.events)
	o.index(exprs)
	if len(o.exprIdx) != len(exprs) {
		return nil, fmt.Errorf("building funnels: two distinct expressions have the same 64-bit hash; change one")
	}
	return o, nil
}

// index fills the tables that map the shared log's names and expressions
// to the funnels' steps.
func (o *Operator) index(exprs map[string]int) {
	o.nExprs, o.exprIdx = len(exprs), make(map[string]int, len(exprs))
	o.exprKeys = make([]string, len(exprs))
	for k, i := range exprs {
		o.exprKeys[i] = exprKey(k)
		o.exprIdx[o.exprKeys[i]] = i
	}
	o.nameIdx = make(map[string]int32, len(o.events))
	for i, name := range o.events {
		o.nameIdx[name] = int32(i)
	}
	for i, f := range o.funnels {
		f.ord, f.idBytes = i, []byte(f.ID)
		f.byName = make([]uint32, len(o.events))
		for name, m := range f.stepsNamed {
			f.byName[o.nameIdx[name]] = m
		}
		for i := range f.Steps {
			f.hasConds = f.hasConds || f.Steps[i].cond != nil
		}
		o.maxRetention = max(o.maxRetention, f.retention())
	}
}

// exprKey is how the shared log names an expression ("w:" or "g:" then its
// source) in a record: its kind letter then the FNV-1a hash of the whole,
// 9 bytes instead of the source, which would be most of a small record.
// Two sources with the same 64-bit hash would share their stored results;
// New refuses definitions where that happens.
func exprKey(k string) string {
	h := fnv.New64a()
	h.Write([]byte(k))
	return string(h.Sum([]byte{k[0]}))
}

// nameIndex returns the index of an event name in o.events; o may be nil.
func (o *Operator) nameIndex(name []byte) (int32, bool) {
	if o == nil {
		return 0, false
	}
	i, ok := o.nameIdx[string(name)]
	return i, ok
}

// Name returns OperatorName.
func (o *Operator) Name() string { return OperatorName }

// Events returns the sorted step event names of all funnels; never nil, so
// that an operator with no funnels receives no events.
func (o *Operator) Events() []string { return o.events }

// OutputTopics returns the aggregates topic.
func (o *Operator) OutputTopics() []string { return []string{o.opts.AggregatesTopic} }

// Definitions returns the funnels, sorted by id. They must not be modified.
func (o *Operator) Definitions() []*Definition { return o.funnels }

// LateDropped counts the events ignored because they were older than window
// + one bucket behind their user's latest event in a funnel (once per
// funnel). Like any metric it also counts events re-processed after an
// aborted transaction. Safe for concurrent use.
func (o *Operator) LateDropped() int64 { return o.late.Load() }

// EvalErrors counts runtime errors of when and group_by expressions; a
// failing when does not match, a failing group_by gives group "".
func (o *Operator) EvalErrors() int64 { return o.evalErrors.Load() }

// OnTimer is never called: funnels set no timers.
func (o *Operator) OnTimer(*engine.Context, *engine.Timer) error { return nil }

// OnEvent updates every funnel with a step named ev.Name. Cost: the
// evaluation of the step conditions of those funnels (each distinct
// condition and group_by once); if the event matches a step, the user's
// record is read and decoded once per transaction (the matched funnels'
// parts only) and kept in the transaction's buffer, the attempts the event
// can deepen are recomputed, and each (funnel, bucket, group) whose count
// rises costs one map update. The records, the counts pages and the upserts
// are written once per transaction, by Flush.
func (o *Operator) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	fs := o.byEvent[ev.Name]
	if len(fs) == 0 {
		return nil
	}
	s := scratchPool.Get().(*scratch)
	defer s.release()
	m := &s.m
	m.reset(ctx, ev, o)
	name := o.nameIdx[ev.Name]
	for _, f := range fs {
		e, err := o.match(f, ev, name, m)
		if err != nil {
			return fmt.Errorf("funnel %s: %w", f.ID, err)
		}
		if e.Steps != 0 {
			s.hits = append(s.hits, hit{f: f, e: e})
		}
	}
	if len(s.hits) == 0 {
		return nil
	}
	// An error below leaves the buffered record half updated; it is never
	// written, since an operator error aborts the transaction and the
	// engine drops its buffers.
	buf := ctx.TxnBuffer(newTxnState).(*txnState)
	rec, err := buf.record(ctx, o)
	if err != nil {
		return err
	}
	if err := rec.states(s.hits, buf, s); err != nil {
		return err
	}
	accepted := false
	for i := range s.hits {
		h := &s.hits[i]
		h.late = h.found && ev.TS < h.st.Latest-h.f.horizon()
		accepted = accepted || !h.late
	}
	var seq int64
	if accepted {
		seq = rec.insert(ev.TS, name, m.results(rec, o))
	}
	for i := range s.hits {
		h := &s.hits[i]
		h.lo = len(s.changes)
		o.update(ctx, rec, s, h, ev, seq)
		h.hi = len(s.changes)
	}
	buf.add(s)
	// Pruned on every event, not once per transaction, so that the record
	// is a function of the user's events, wherever transactions end (the
	// restore digests of the fault campaign compare records at the same
	// offset across runs).
	return rec.pruneLog(o.maxRetention, func() error {
		for i := range rec.parts {
			if d := rec.parts[i].def; d != nil {
				if _, _, err := rec.state(d, buf, s); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// scratch is the reusable memory of one OnEvent or Flush call.
type scratch struct {
	m       matcher
	groups  []string
	hits    []hit
	changes []change
	buckets bucketCache // kept across events: bucketOf is pure
	view    []stepEvent
	nameMap []int32 // appendLog's tables
	exprMap []int32
	strMap  []int32
	strs    interner // kept across events
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (s *scratch) release() {
	s.m = matcher{vals: s.m.vals[:0], out: s.m.out[:0]}
	s.hits = s.hits[:0]
	clear(s.changes)
	s.changes = s.changes[:0]
	scratchPool.Put(s)
}

// hit is an event that matched at least one step of f; its changes are
// scratch.changes[lo:hi].
type hit struct {
	f      *Definition
	e      stepEvent
	lo, hi int
	st     *userState
	found  bool // the user had a part in f
	late   bool // too late for f
}

// update adds h's event, the log entry seq (0 if no funnel accepted it), to
// the user's state in h.f unless it is too late, and appends the raises of
// the user's depths to s.changes. An event that comes after every event of
// the funnel and can extend no attempt past what is counted (settled) costs
// O(1); any other reads the funnel's events from the log (view) and
// recomputes the attempts the event can deepen.
func (o *Operator) update(ctx *engine.Context, rec *userRecord, s *scratch, h *hit, ev *engine.Event, seq int64) {
	st, d := h.st, h.f
	if h.late {
		if seq != 0 {
			st.Except = append(st.Except, seq)
			st.changed, rec.dirty = true, true
		}
		o.late.Add(1)
		ctx.Logger().Debug("dropping late funnel event", "funnel", d.ID, "user", ctx.UserID(),
			"event", ev.Cause(), "ts", ev.TS, "latest", st.Latest)
		return
	}
	if !h.found {
		st.Since, st.changed = seq, true
	}
	lo := len(s.changes)
	inOrder := !h.found || ev.TS >= st.Latest
	st.Latest = max(st.Latest, ev.TS)
	later := h.e.Steps &^ 1
	if inOrder && (later == 0 || st.settled(ev.TS-d.windowMs(), bits.Len32(later))) {
		if h.e.Steps&1 != 0 {
			label, end := s.buckets.of(d, ev.TS)
			s.changes = st.raise(label, h.e.Group, 1, end, s.changes, len(s.changes))
		}
	} else {
		// recount reads the attempts starting a window before the event
		// and their steps up to a window after it; for an event in order,
		// only the attempts it can raise.
		from, to := d.around(ev.TS)
		maxDepth := len(d.Steps)
		if inOrder {
			maxDepth = bits.Len32(h.e.Steps)
			from = st.openFrom(d, from, ev.TS, maxDepth)
		}
		var p int
		s.view, p = rec.view(d, st, seq, from, to, s.view[:0])
		s.changes = st.recount(d, s.view, p, later == 0, maxDepth, s.changes, &s.buckets)
	}
	st.changed = st.changed || len(s.changes) > lo
	st.prune(d)
	rec.dirty = true
}

// results returns the results of the expressions evaluated on the event,
// to be stored with its log entry; their strings are added to rec.
func (m *matcher) results(rec *userRecord, o *Operator) []entryVal {
	out := m.out[:0]
	for i := range m.vals {
		v := &m.vals[i]
		if !v.done || v.err != nil {
			continue
		}
		if o.exprKeys[i][0] == 'g' {
			if v.group != "" {
				out = append(out, entryVal{expr: int32(i), str: rec.internStr(v.group)})
			}
		} else if v.ok {
			out = append(out, entryVal{expr: int32(i), str: -1})
		}
	}
	m.out = out
	return out
}

// matcher builds the expression environment of one event at most once and
// evaluates each distinct condition and group_by (by source text) at most
// once.
type matcher struct {
	ctx     *engine.Context
	ev      *engine.Event
	env     map[string]any
	profile bool
	vals    []exprVal // by Operator.exprs index
	out     []entryVal
}

// exprVal is the cached result of one expression on the event.
type exprVal struct {
	done  bool
	ok    bool   // a condition's result
	group string // a group_by's result
	err   error  // the runtime error, if any
}

func (m *matcher) reset(ctx *engine.Context, ev *engine.Event, o *Operator) {
	m.ctx, m.ev, m.env, m.profile = ctx, ev, nil, false
	m.vals = append(m.vals[:0], make([]exprVal, o.nExprs)...)
}

func (m *matcher) envFor(needProfile bool) (map[string]any, error) {
	if m.env == nil {
		m.env = cexpr.Env(m.ev, nil, nil)
	}
	if needProfile && !m.profile {
		p, err := m.ctx.Profile()
		if err != nil {
			return nil, err
		}
		m.env["profile"], m.profile = p, true
	}
	return m.env, nil
}

// match returns ev, whose name has index name in o.events, as a stepEvent of f: the steps it matches (Steps == 0 for
// none) and, if it matches step 1, its group.
func (o *Operator) match(f *Definition, ev *engine.Event, name int32, m *matcher) (stepEvent, error) {
	e := stepEvent{TS: ev.TS}
	named := f.byName[name]
	for i := 0; named != 0; i++ {
		bit := uint32(1) << i
		if named&bit == 0 {
			continue
		}
		named &^= bit
		ok, err := o.eval(f, i, m)
		if err != nil {
			return e, err
		}
		if ok {
			e.Steps |= bit
		}
	}
	if e.Steps&1 != 0 && f.groupProg != nil {
		g, err := o.group(f, m)
		if err != nil {
			return e, err
		}
		e.Group = g
	}
	return e, nil
}

// eval evaluates the condition of step i; a runtime error is a non-match.
func (o *Operator) eval(f *Definition, i int, m *matcher) (bool, error) {
	st := &f.Steps[i]
	if st.cond == nil {
		return true, nil
	}
	v := &m.vals[st.exprIdx]
	if !v.done {
		env, err := m.envFor(f.usesProf)
		if err != nil {
			return false, err
		}
		v.ok, v.err = st.cond.Eval(env)
		v.done = true
	}
	if v.err != nil {
		o.evalErrors.Add(1)
		m.ctx.Logger().Debug("funnel condition failed", "funnel", f.ID, "step", i+1, "err", v.err)
		return false, nil
	}
	return v.ok, nil
}

// group evaluates group_by: nil gives "", a string itself, others fmt.Sprint;
// a runtime error gives "".
func (o *Operator) group(f *Definition, m *matcher) (string, error) {
	v := &m.vals[f.groupIdx]
	if !v.done && f.groupProp != "" {
		v.group, v.done = groupText(m.ev.Props[f.groupProp]), true
	}
	if !v.done {
		env, err := m.envFor(f.usesProf)
		if err != nil {
			return "", err
		}
		var x any
		if x, v.err = expr.Run(f.groupProg, env); v.err == nil {
			v.group = groupText(x)
		}
		v.done = true
	}
	if v.err != nil {
		o.evalErrors.Add(1)
		return "", nil
	}
	return v.group, nil
}

// groupText is the group of a group_by value: nil gives "", a string
// itself, others fmt.Sprint.
func groupText(x any) string {
	switch x := x.(type) {
	case nil:
		return ""
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// appendJSON appends the row as encoding/json encodes it, by hand when no
// string needs escaping.
func (r *Row) appendJSON(b []byte) ([]byte, error) {
	if !jsonPlain(r.Funnel) || !jsonPlain(r.Bucket) || !jsonPlain(r.Group) || r.Steps == nil {
		return json.Marshal(r)
	}
	if b == nil {
		b = make([]byte, 0, 64+len(r.Funnel)+len(r.Bucket)+len(r.Group)+len(r.Steps)*4)
	}
	b = append(b, `{"funnel":"`...)
	b = append(b, r.Funnel...)
	b = append(b, `","bucket":"`...)
	b = append(b, r.Bucket...)
	b = append(b, `","group":"`...)
	b = append(b, r.Group...)
	b = append(b, `","partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"steps":[`...)
	for i, c := range r.Steps {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, c, 10)
	}
	return append(b, "]}"...), nil
}

// jsonPlain reports whether encoding/json writes s as is between quotes.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Key returns the row's aggregates key,
// "funnel/<id>/<bucket>/<group>/<partition>", with the group path-escaped
// so that a "/" in it cannot be confused with a separator.
func (r Row) Key() string {
	return "funnel/" + r.Funnel + "/" + r.Bucket + "/" + url.PathEscape(r.Group) + "/" + strconv.Itoa(int(r.Partition))
}
