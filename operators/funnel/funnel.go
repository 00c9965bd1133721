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
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/expr-lang/expr"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
	cexpr "github.com/cairn-cjo/cairn/operators/expr"
	"github.com/cairn-cjo/cairn/state"
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

	late       atomic.Int64
	evalErrors atomic.Int64
}

var _ engine.Operator = (*Operator)(nil)

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
	for _, f := range fs {
		o.byID[f.ID] = f
		for name := range f.stepsNamed {
			o.byEvent[name] = append(o.byEvent[name], f)
		}
	}
	for name := range o.byEvent {
		o.events = append(o.events, name)
	}
	sort.Strings(o.events)
	return o, nil
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
// evaluation of the step conditions of those funnels; if the event matches
// a step, one read and one write of the user's record (whatever the number
// of funnels, so one changelog record), the decoding and encoding of the
// matched funnels' parts of it, and one shared read, write and upsert per
// (funnel, bucket, group) whose count rises.
func (o *Operator) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	fs := o.byEvent[ev.Name]
	if len(fs) == 0 {
		return nil
	}
	m := matcher{ctx: ctx, ev: ev}
	hits := make([]hit, 0, len(fs))
	for _, f := range fs {
		e, err := o.match(f, ev, &m)
		if err != nil {
			return fmt.Errorf("funnel %s: %w", f.ID, err)
		}
		if e.Steps != 0 {
			hits = append(hits, hit{f, e})
		}
	}
	if len(hits) == 0 {
		return nil
	}
	rec, err := loadRecord(ctx)
	if err != nil {
		return err
	}
	var changes [][]change
	for _, h := range hits {
		ch, err := o.update(ctx, rec, h, ev)
		if err != nil {
			return fmt.Errorf("funnel %s: %w", h.f.ID, err)
		}
		changes = append(changes, ch)
	}
	if err := rec.save(ctx, o.byID); err != nil {
		return err
	}
	for i, h := range hits {
		if err := o.applyChanges(ctx, h.f, changes[i]); err != nil {
			return fmt.Errorf("funnel %s: %w", h.f.ID, err)
		}
	}
	return nil
}

// hit is an event that matched at least one step of f.
type hit struct {
	f *Definition
	e stepEvent
}

// update adds h to the user's state in h.f unless it is too late, and
// returns the raises of the user's depths.
func (o *Operator) update(ctx *engine.Context, rec *userRecord, h hit, ev *engine.Event) ([]change, error) {
	st, found, err := rec.get(h.f.ID)
	if err != nil {
		return nil, err
	}
	if found && ev.TS < st.Latest-h.f.horizon() {
		o.late.Add(1)
		ctx.Logger().Debug("dropping late funnel event", "funnel", h.f.ID, "user", ctx.UserID(),
			"event", ev.Cause(), "ts", ev.TS, "latest", st.Latest)
		return nil, nil
	}
	changes := st.add(h.f, h.e)
	st.prune(h.f)
	return changes, rec.put(h.f.ID, st)
}

// matcher builds the expression environment of one event at most once.
type matcher struct {
	ctx     *engine.Context
	ev      *engine.Event
	env     map[string]any
	profile bool
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

// match returns ev as a stepEvent of f: the steps it matches (Steps == 0 for
// none) and, if it matches step 1, its group.
func (o *Operator) match(f *Definition, ev *engine.Event, m *matcher) (stepEvent, error) {
	e := stepEvent{TS: ev.TS, Off: ev.Offset}
	named := f.stepsNamed[ev.Name]
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
		env, err := m.envFor(f.usesProf)
		if err != nil {
			return e, err
		}
		e.Group = o.group(f, env)
	}
	return e, nil
}

// eval evaluates the condition of step i; a runtime error is a non-match.
func (o *Operator) eval(f *Definition, i int, m *matcher) (bool, error) {
	cond := f.Steps[i].cond
	if cond == nil {
		return true, nil
	}
	env, err := m.envFor(f.usesProf)
	if err != nil {
		return false, err
	}
	ok, err := cond.Eval(env)
	if err != nil {
		o.evalErrors.Add(1)
		m.ctx.Logger().Debug("funnel condition failed", "funnel", f.ID, "step", i+1, "err", err)
		return false, nil
	}
	return ok, nil
}

// group evaluates group_by: nil gives "", a string itself, others fmt.Sprint.
func (o *Operator) group(f *Definition, env map[string]any) string {
	v, err := expr.Run(f.groupProg, env)
	if err != nil {
		o.evalErrors.Add(1)
		return ""
	}
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func countSub(id, bucket, group string) []byte {
	return []byte("c/" + id + "\x00" + bucket + "\x00" + group)
}

// applyChanges adds the raises to the partition's counts, in (bucket,
// group) order, and upserts each changed row.
func (o *Operator) applyChanges(ctx *engine.Context, f *Definition, changes []change) error {
	slices.SortFunc(changes, func(a, b change) int {
		if c := cmp.Compare(a.Bucket, b.Bucket); c != 0 {
			return c
		}
		return cmp.Compare(a.Group, b.Group)
	})
	for _, c := range changes {
		if err := o.applyChange(ctx, f, c); err != nil {
			return err
		}
	}
	return nil
}

func (o *Operator) applyChange(ctx *engine.Context, f *Definition, c change) error {
	sub := countSub(f.ID, c.Bucket, c.Group)
	counts := make([]int64, len(f.Steps))
	b, err := ctx.GetShared(sub)
	if err != nil {
		return err
	}
	if b != nil {
		var old []int64
		if err := state.DecodeValue(b, &old); err != nil {
			return fmt.Errorf("reading counts of %s/%s: %w", c.Bucket, c.Group, err)
		}
		copy(counts, old)
	}
	for j := c.From; j < c.To; j++ {
		counts[j]++
	}
	if b, err = state.EncodeValue(counts); err != nil {
		return err
	}
	if err := ctx.SetShared(sub, b); err != nil {
		return err
	}
	row := Row{Funnel: f.ID, Bucket: c.Bucket, Group: c.Group, Partition: ctx.Partition(), Steps: counts}
	v, err := json.Marshal(row)
	if err != nil {
		return fmt.Errorf("encoding row: %w", err)
	}
	ctx.Upsert(engine.Output{Topic: o.opts.AggregatesTopic, Key: []byte(row.Key()), Value: v})
	return nil
}

// Key returns the row's aggregates key,
// "funnel/<id>/<bucket>/<group>/<partition>", with the group path-escaped
// so that a "/" in it cannot be confused with a separator.
func (r Row) Key() string {
	return "funnel/" + r.Funnel + "/" + r.Bucket + "/" + url.PathEscape(r.Group) + "/" + strconv.Itoa(int(r.Partition))
}
