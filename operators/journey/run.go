package journey

import (
	"bytes"
	"fmt"
	"sort"

	"github.com/cairn-cjo/cairn/engine"
)

// run is the state of one OnEvent or OnTimer call: records read so far and
// whether they changed, so that each key is read and written at most once
// per call. It is used by one goroutine and discarded after the call.
type run struct {
	o     *Operator
	ctx   *engine.Context
	now   int64
	cause string
	event *engine.Event // the event, or a synthetic "$timer" event

	recs    map[string]*recSlot
	hist    map[string][]histEvent
	caps    *capState
	capsMod bool
	cur     statKey // journey being run, for eval error counts
	err     error   // a state read error of stat, returned by flush
	// snap, when not nil, holds every key of the user's journey state (sub
	// key -> value) as one Scan read them at the start of the call: a key
	// missing from it does not exist. See preload.
	snap map[string][]byte
}

type recSlot struct {
	rec   *userRec
	dirty bool
}

func newRun(o *Operator, ctx *engine.Context, ev *engine.Event, cause string) *run {
	return &run{o: o, ctx: ctx, now: ctx.Now(), cause: cause, event: ev,
		recs: map[string]*recSlot{}, hist: map[string][]histEvent{}}
}

// rec returns the user's record of journey id, reading it once per call.
func (r *run) rec(id string) (*userRec, error) {
	if s, ok := r.recs[id]; ok {
		return s.rec, nil
	}
	rec := &userRec{}
	b, err := r.read(recPrefix + id)
	if err != nil {
		return nil, err
	}
	if b != nil {
		if err := decode(b, rec); err != nil {
			return nil, fmt.Errorf("reading record of %s: %w", id, err)
		}
	}
	r.recs[id] = &recSlot{rec: rec}
	return rec, nil
}

// defaultPreloadMin is the number of the user's keys an event's call
// expects to read from which preload reads them all with one Scan instead
// of a Get each (Options.preloadMin).
//
// Why: a Get that misses the batch and the memtable seeks every level of
// the LSM (the store has no bloom filters), and most reads of an event
// reaching many journeys are misses (journeys the user never entered) or
// records spread over the same levels. The user's keys are adjacent (user,
// then operator, then sub key), so one Scan positions once and reads them
// in sequence. With 100 generated journeys an event reaches 33–100 of
// them: those Gets were about 18% of the CPU of `processor bench
// --generate 100/20/20`. Timer firings keep Gets: a Scan there measured
// slower (all of the user's keys, or those up to the firing's record) or
// no better (cap state and did-histories, stopping at the first record).
const defaultPreloadMin = 3

// preload reads every key of the user's journey state (records, did
// histories, cap state) with one Scan, so that the reads of the call that
// follow cost a map lookup. Call it before the first read of the call,
// and only when Options.preloadMin reads or more are expected: a Scan
// copies every record of the user, which costs more than a Get or two when
// few are needed. It changes no result: reads see the same values either way,
// since every key the call writes is cached (recs, hist, caps) from its
// first read on, before the write.
func (r *run) preload() error {
	snap := map[string][]byte{}
	err := r.ctx.Scan(nil, func(sub, value []byte) error {
		snap[string(sub)] = bytes.Clone(value)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading journey state of %s: %w", r.ctx.UserID(), err)
	}
	r.snap = snap
	return nil
}

// read returns the user's value of sub key sub, or nil: from the preloaded
// snapshot if there is one, else with a Get.
func (r *run) read(sub string) ([]byte, error) {
	if r.snap != nil {
		return r.snap[sub], nil
	}
	return r.ctx.Get([]byte(sub))
}

func (r *run) touch(id string) { r.recs[id].dirty = true }

// flush writes the changed records and cap state, in key order; the
// counters are written once per transaction, by Flush.
func (r *run) flush() error {
	if err := r.flushUser(); err != nil {
		return err
	}
	return r.statsErr()
}

// flushUser writes the user's changed records and cap state, in key order.
func (r *run) flushUser() error {
	ids := make([]string, 0, len(r.recs))
	for id, s := range r.recs {
		if s.dirty {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		b, err := encode(r.recs[id].rec)
		if err != nil {
			return err
		}
		if err := r.ctx.Set([]byte(recPrefix+id), b); err != nil {
			return err
		}
	}
	return r.flushCaps()
}

// onEvent runs journey id for the current event: exits of stopped or
// removed versions, goal, exit_on, a for_event wait, then entry.
func (r *run) onEvent(id string) error {
	rec, err := r.rec(id)
	if err != nil {
		return err
	}
	def, err := r.live(id, rec)
	if err != nil {
		return err
	}
	if err := r.checkGoal(id, rec); err != nil {
		return err
	}
	if rec.Active {
		if err := r.checkExitOn(id, rec, def); err != nil {
			return err
		}
	}
	if rec.Active {
		return r.checkWaitEvent(id, rec, def)
	}
	return r.tryEnter(id, rec)
}

// live returns the definition of the latest entry's version. If the
// instance is active but its version was stopped or is no longer loaded, it
// exits the instance first.
func (r *run) live(id string, rec *userRec) (*journeyDef, error) {
	def := r.o.def(id, rec.Version)
	switch {
	case !rec.Active:
	case def == nil:
		r.ctx.Logger().Warn("exiting journey instance of a version no longer loaded",
			"journey", id, "version", rec.Version, "user", r.ctx.UserID())
		return nil, r.exit(id, rec, "removed")
	case def.status == statusStopped:
		return def, r.exit(id, rec, "stopped")
	}
	return def, nil
}

func (r *run) env(rec *userRec) *evalEnv {
	return &evalEnv{r: r, event: r.event, stored: &rec.Entry, entryTS: rec.Entry.TS}
}

func (r *run) matches(m *eventMatch, rec *userRec) (bool, error) {
	if r.event.Name != m.event {
		return false, nil
	}
	return r.env(rec).check(m.where)
}

func (r *run) checkGoal(id string, rec *userRec) error {
	if !rec.GoalOpen {
		return nil
	}
	def := r.o.def(id, rec.Version)
	if def == nil || def.goal == nil || rec.GoalDeadline != 0 && r.now > rec.GoalDeadline {
		rec.GoalOpen = false // the window closed: forget it
		r.touch(id)
		return nil
	}
	if r.now < rec.Entry.TS {
		return nil // a late event from before the entry is no conversion
	}
	r.cur = statKey{id, rec.Version}
	ok, err := r.matches(&def.goal.eventMatch, rec)
	if err != nil || !ok {
		return err
	}
	rec.GoalOpen = false
	r.touch(id)
	st := r.stat(id, rec.Version)
	if rec.Holdout {
		st.Goals.Holdout++
	} else {
		st.Goals.Treatment++
	}
	if rec.Active {
		return r.exit(id, rec, "goal")
	}
	return nil
}

func (r *run) checkExitOn(id string, rec *userRec, def *journeyDef) error {
	r.cur = statKey{id, rec.Version}
	for i := range def.exitOn {
		ok, err := r.matches(&def.exitOn[i], rec)
		if err != nil {
			return err
		}
		if ok {
			return r.exit(id, rec, "exit_on")
		}
	}
	return nil
}

func (r *run) checkWaitEvent(id string, rec *userRec, def *journeyDef) error {
	n := def.nodes[rec.Node]
	if rec.Holdout || n == nil || n.kind != kindWait || n.wait.kind != waitEvent {
		return nil
	}
	r.cur = statKey{id, rec.Version}
	ok, err := r.matches(&n.wait.event, rec)
	if err != nil || !ok {
		return err
	}
	if err := r.cancelTimer(id, rec); err != nil {
		return err
	}
	r.leave(id, rec)
	return r.step(id, rec, def, n.wait.onEvent)
}

// tryEnter enters the user in the current version of journey id if the
// event is its entry event, reentry allows it and when holds.
func (r *run) tryEnter(id string, rec *userRec) error {
	set := r.o.journeys[id]
	if set == nil || set.current == nil || !set.current.entryMatches(r.event) {
		return nil
	}
	return r.admit(id, rec, set.current)
}

// admit enters the user, who is not in journey id, in def if reentry
// allows it and the entry condition holds for the current event.
func (r *run) admit(id string, rec *userRec, def *journeyDef) error {
	if !r.reentryAllowed(def, rec) {
		return nil
	}
	r.cur = statKey{id, def.version}
	env := &evalEnv{r: r, event: r.event, entry: r.event, entryTS: r.now}
	ok, err := env.check(def.entryWhen)
	if err != nil || !ok {
		return err
	}
	return r.enter(id, rec, def)
}

func (r *run) reentryAllowed(def *journeyDef, rec *userRec) bool {
	if rec.Seq == 0 {
		return true
	}
	switch def.reentry {
	case reentryAfterExit:
		return true
	case reentryDuration:
		return r.now-rec.Entry.TS >= def.reentryAfter
	}
	return false
}
