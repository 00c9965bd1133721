package journey

import (
	"fmt"
	"hash/fnv"
	"strconv"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/operators/segment"
)

// Scheduled broadcasts: `entry: {schedule: {cron, timezone, segment}}`.
//
// Each partition keeps, per scheduled journey, one partition timer (user
// "", id "b/<journey>") and one progress record (shared sub key
// "b/<journey>", a broadcastRec). Its life cycle:
//
//  1. Arming. The operator listens to every event while a journey is
//     scheduled. On each event it reads the shared key "a", the
//     fingerprint of the schedules already armed on the partition; when it
//     differs from the loaded definitions' (o.schedFP), it arms every
//     scheduled journey whose record is missing or was computed for
//     another schedule: Tick = the first tick strictly after the partition
//     clock, and the timer is set at Tick. So a partition arms at its first
//     event after a deploy, and ticks before that are not broadcast.
//  2. A pass. When the timer fires at Tick, the record becomes Running with
//     Cursor 0 and the segment of the schedule. Each firing enters at most
//     Options.BroadcastSlice members whose dense id is ≥ Cursor
//     (segment.MembersFrom), stores the new Cursor and sets the timer again
//     at the same due time, so the next slice runs next, before any later
//     timer or event.
//  3. The next tick. The firing that finds no member left sets Tick to the
//     schedule's next tick after the finished one, and the timer there.
//     Ticks missed while the partition was behind fire in turn as its clock
//     passes them: a replay broadcasts exactly what a live run did.
//
// Exactly once per tick: a firing's entries, its Cursor and its next timer
// are written in the same batch, hence committed or dropped together, and
// a member is visited once per pass because the cursor only grows and dense
// ids are never reused. A crash resumes at the last committed Cursor.
//
// Invariant: a record exists iff the timer "b/<journey>" is pending, and
// the timer's payload holds the record's Tick.
const (
	broadcastPrefix = "b/" // timer id and shared sub key of a journey's broadcast
	armedKey        = "a"  // shared: o.schedFP as of the last arming
	// broadcastEvent names the synthetic entry event of a broadcast: ts
	// is the firing's time, props {"segment": id}.
	broadcastEvent = "$broadcast"
)

// broadcastRec is a partition's progress in one journey's broadcasts.
type broadcastRec struct {
	FP      string `msgpack:"f"`           // fingerprint of the schedule Tick was computed with
	Tick    int64  `msgpack:"t"`           // the pending tick, or the tick of the running pass
	Running bool   `msgpack:"r,omitempty"` // a pass over the members is in progress
	Segment string `msgpack:"s,omitempty"` // segment of the running pass
	Cursor  uint32 `msgpack:"c,omitempty"` // next dense id to visit in the running pass
}

// broadcastPayload is the payload of a broadcast timer.
type broadcastPayload struct {
	Tick int64 `msgpack:"t"`
}

// indexSchedules lists the journeys whose current version is a broadcast
// and fingerprints them with their schedules, for armSchedules.
func (o *Operator) indexSchedules() {
	h := fnv.New64a()
	for _, id := range o.ids {
		if def := o.scheduledDef(id); def != nil {
			o.scheduled = append(o.scheduled, id)
			fmt.Fprintf(h, "%s\x00%s\x00", id, def.schedule.fp)
		}
	}
	if len(o.scheduled) > 0 {
		o.schedFP = strconv.FormatUint(h.Sum64(), 16)
	}
}

// scheduledDef returns the current version of journey id if it enters by
// schedule, else nil.
func (o *Operator) scheduledDef(id string) *journeyDef {
	if s := o.journeys[id]; s != nil && s.current != nil && s.current.schedule != nil {
		return s.current
	}
	return nil
}

// armSchedules arms the broadcast timers of the partition if the
// definitions changed since it last did. Cost: one shared read per event.
func (o *Operator) armSchedules(ctx *engine.Context) error {
	if len(o.scheduled) == 0 {
		return nil
	}
	b, err := ctx.GetShared([]byte(armedKey))
	if err != nil {
		return err
	}
	var armed string
	if b != nil {
		if err := decode(b, &armed); err != nil {
			return fmt.Errorf("reading armed schedules: %w", err)
		}
	}
	if armed == o.schedFP {
		return nil
	}
	pctx := ctx.ForUser("")
	for _, id := range o.scheduled {
		if err := o.arm(pctx, id); err != nil {
			return fmt.Errorf("arming journey %s: %w", id, err)
		}
	}
	if b, err = encode(o.schedFP); err != nil {
		return err
	}
	return ctx.SetShared([]byte(armedKey), b)
}

// arm sets the broadcast timer of journey id at the next tick after the
// partition clock, unless it is pending for the same schedule or a pass is
// running (the pass finishes first, then uses the new schedule).
func (o *Operator) arm(pctx *engine.Context, id string) error {
	sc := o.scheduledDef(id).schedule
	rec, err := loadBroadcast(pctx, id)
	if err != nil || rec != nil && (rec.Running || rec.FP == sc.fp) {
		return err
	}
	return o.scheduleNext(pctx, id, sc, pctx.Clock())
}

// scheduleNext arms journey id at the first tick of sc after the event
// time after; a schedule with no tick left drops the broadcast.
func (o *Operator) scheduleNext(pctx *engine.Context, id string, sc *scheduleSpec, after int64) error {
	tick, ok := sc.next(after)
	if !ok {
		pctx.Logger().Warn("journey schedule has no tick in the next five years", "journey", id, "cron", sc.cron)
		return dropBroadcast(pctx, id, false)
	}
	return saveBroadcast(pctx, id, &broadcastRec{FP: sc.fp, Tick: tick}, tick)
}

// onBroadcast runs one firing of journey id's broadcast timer: it starts
// a pass at its tick, enters one slice of members, and sets the timer for
// the next slice or the next tick.
func (o *Operator) onBroadcast(pctx *engine.Context, id string, t *engine.Timer) error {
	var pl broadcastPayload
	if err := decode(t.Payload, &pl); err != nil {
		return fmt.Errorf("reading timer %s: %w", t.ID, err)
	}
	rec, err := loadBroadcast(pctx, id)
	if err != nil {
		return err
	}
	if rec == nil || rec.Tick != pl.Tick {
		// The invariant is broken (state edited by hand?): start afresh
		// rather than leave a record without a timer, which would never
		// fire again.
		pctx.Logger().Warn("dropping a broadcast timer that disagrees with its record; re-arming at the next event",
			"journey", id, "tick", pl.Tick)
		return dropBroadcast(pctx, id, true)
	}
	def := o.scheduledDef(id)
	switch {
	case def == nil: // removed, paused, or no longer a broadcast
		return dropBroadcast(pctx, id, true)
	case !rec.Running && rec.FP != def.schedule.fp:
		// The schedule changed and no event re-armed it yet: this tick
		// belongs to the old schedule; the new one applies after it.
		return o.scheduleNext(pctx, id, def.schedule, pctx.Now())
	case !rec.Running:
		rec.Running, rec.Segment, rec.Cursor = true, def.schedule.segment, 0
	}
	next, more, err := o.broadcastSlice(pctx, id, def, rec, t.Cause())
	if err != nil {
		return err
	}
	if more {
		if next <= rec.Cursor {
			// MembersFrom must move forward, or this timer would fire
			// at the same due time forever.
			return fmt.Errorf("broadcast of segment %s stuck at dense id %d", rec.Segment, next)
		}
		rec.Cursor = next
		return saveBroadcast(pctx, id, rec, t.Due)
	}
	return o.scheduleNext(pctx, id, def.schedule, rec.Tick)
}

// broadcastSlice enters the next slice of rec's pass and returns the
// cursor after it and whether members may remain. Members are read first
// and entered after the scan, so that no write happens during it.
func (o *Operator) broadcastSlice(pctx *engine.Context, id string, def *journeyDef, rec *broadcastRec, cause string) (uint32, bool, error) {
	get := func(sub []byte) ([]byte, error) { return pctx.GetSharedOf(segment.OperatorName, sub) }
	scan := func(prefix []byte, fn func(sub, value []byte) error) error {
		return pctx.ScanSharedOf(segment.OperatorName, prefix, fn)
	}
	var users []string
	next, more, err := segment.MembersFrom(get, scan, rec.Segment, rec.Cursor, o.opts.BroadcastSlice,
		func(u string) error { users = append(users, u); return nil })
	if err != nil {
		return 0, false, fmt.Errorf("reading members of segment %s: %w", rec.Segment, err)
	}
	for _, u := range users {
		ev := &engine.Event{Name: broadcastEvent, TS: pctx.Now(), UserID: u, Props: map[string]any{segmentProp: rec.Segment}}
		r := newRun(o, pctx.ForUser(u), ev, cause)
		if err := r.enterBroadcast(id, def); err != nil {
			return 0, false, fmt.Errorf("entering %s: %w", u, err)
		}
		if err := r.flushUser(); err != nil {
			return 0, false, err
		}
		if err := r.statsErr(); err != nil {
			return 0, false, err
		}
		failpoint.Inject(failpoint.MidBroadcast)
	}
	return next, more, nil
}

// enterBroadcast enters the user in def, the current version of journey
// id, unless they are in the journey already (a broadcast does not restart
// an instance) or reentry or when says no; so holdouts and reentry apply
// as for any entry.
func (r *run) enterBroadcast(id string, def *journeyDef) error {
	rec, err := r.rec(id)
	if err != nil {
		return err
	}
	if _, err := r.live(id, rec); err != nil || rec.Active {
		return err
	}
	return r.admit(id, rec, def)
}

func loadBroadcast(pctx *engine.Context, id string) (*broadcastRec, error) {
	b, err := pctx.GetShared([]byte(broadcastPrefix + id))
	if err != nil || b == nil {
		return nil, err
	}
	rec := &broadcastRec{}
	if err := decode(b, rec); err != nil {
		return nil, fmt.Errorf("reading broadcast of %s: %w", id, err)
	}
	return rec, nil
}

// saveBroadcast writes rec and sets the broadcast timer at due.
func saveBroadcast(pctx *engine.Context, id string, rec *broadcastRec, due int64) error {
	b, err := encode(rec)
	if err != nil {
		return err
	}
	if err := pctx.SetShared([]byte(broadcastPrefix+id), b); err != nil {
		return err
	}
	pl, err := encode(broadcastPayload{Tick: rec.Tick})
	if err != nil {
		return err
	}
	return pctx.ForUser("").SetTimer(broadcastPrefix+id, due, pl)
}

// dropBroadcast forgets journey id's broadcast on the partition. With
// rearm it also clears the armed fingerprint, so that the next event arms
// again whatever the definitions then say: a journey that stopped being a
// broadcast and becomes one again (paused, then resumed) is re-armed even
// though the fingerprint is back to the value already stored.
func dropBroadcast(pctx *engine.Context, id string, rearm bool) error {
	if err := pctx.ForUser("").CancelTimer(broadcastPrefix + id); err != nil {
		return err
	}
	if err := pctx.DeleteShared([]byte(broadcastPrefix + id)); err != nil {
		return err
	}
	if !rearm {
		return nil
	}
	return pctx.DeleteShared([]byte(armedKey))
}
