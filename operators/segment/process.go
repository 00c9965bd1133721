package segment

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/expr"
)

// OnEvent updates the counters the event feeds, re-evaluates the segments
// it can change and then, in dependency order, the segments that refer to a
// segment whose membership changed.
func (o *Operator) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if ev.Name == EventEnter || ev.Name == EventExit {
		return nil // our own output: dependents were handled in the same call
	}
	u, err := o.loadUser(ctx)
	if err != nil {
		return err
	}
	dirty := make([]bool, len(o.segs))
	if u.rec.Z != o.defsFP {
		// The user's first event, or the first since the definitions
		// changed: evaluate every segment once.
		for ix := range dirty {
			dirty[ix] = true
		}
		u.rec.Z, u.recDirty = o.defsFP, true
	}
	if ev.Name == EventAdd || ev.Name == EventRemove {
		o.applyList(u, ev, dirty)
	}
	if ev.Name == engine.EventProfileSet || ev.Name == engine.EventProfileUnset {
		for _, s := range o.segs {
			dirty[s.ix] = dirty[s.ix] || s.profile
		}
	}
	counted, err := o.countEvent(u, ev, dirty)
	if err != nil {
		return err
	}
	if err := o.propagate(u, dirty, ev); err != nil {
		return err
	}
	for _, s := range counted {
		if err := o.schedule(u, s); err != nil {
			return err
		}
	}
	return u.save()
}

// OnTimer re-evaluates the segment whose window timer fired (and its
// dependents), then sets the timer for the segment's next change.
func (o *Operator) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	s, ok := o.byID[strings.TrimPrefix(t.ID, timerPrefix)]
	if !ok || !strings.HasPrefix(t.ID, timerPrefix) {
		ctx.Logger().Warn("dropping timer of unknown segment", "timer", t.ID, "user", ctx.UserID())
		return nil
	}
	u, err := o.loadUser(ctx)
	if err != nil {
		return err
	}
	dirty := make([]bool, len(o.segs))
	dirty[s.ix] = true
	src := &engine.Event{UserID: ctx.UserID(), TS: ctx.Now()}
	if err := o.propagate(u, dirty, src); err != nil {
		return err
	}
	if err := o.schedule(u, s); err != nil {
		return err
	}
	return u.save()
}

// applyList applies an upload event. An event for an unknown segment, or a
// segment with no list rule, is logged and ignored: a bad upload must not
// stop the partition.
func (o *Operator) applyList(u *userState, ev *engine.Event, dirty []bool) {
	id, _ := ev.Props["segment"].(string)
	s, ok := o.byID[id]
	if !ok || !s.list {
		u.ctx.Logger().Warn("ignoring list event for a segment with no list rule", "event", ev.Name, "segment", id, "cause", ev.Cause())
		return
	}
	if setIn(&u.rec.Lists, id, ev.Name == EventAdd) {
		u.recDirty = true
		dirty[s.ix] = true
	}
}

// countEvent feeds ev to every event rule named like it whose where
// matches, marks the segments whose counters changed and returns them.
func (o *Operator) countEvent(u *userState, ev *engine.Event, dirty []bool) ([]*segment, error) {
	var changed []*segment
	for _, s := range o.byEvent[ev.Name] {
		hit := false
		for _, e := range s.feeds {
			ok, err := o.matches(u, e, ev)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			ce, err := u.counter(e)
			if err != nil {
				return nil, err
			}
			if ce.c.add(e, ev.TS, u.clock) {
				ce.dirty, hit = true, true
			}
		}
		if hit {
			dirty[s.ix] = true
			changed = append(changed, s)
		}
	}
	return changed, nil
}

func (o *Operator) matches(u *userState, e *eventRule, ev *engine.Event) (bool, error) {
	if e.name != ev.Name {
		return false, nil
	}
	if e.where == nil {
		return true, nil
	}
	p, err := u.ctx.Profile()
	if err != nil {
		return false, err
	}
	ok, err := e.where.Eval(expr.Env(ev, nil, p))
	if err != nil {
		u.ctx.Logger().Debug("segment where failed", "event", ev.Cause(), "err", err)
	}
	return ok, nil
}

// propagate evaluates the dirty segments in dependency order; a change of
// membership dirties the segments that refer to the changed one, which
// come later in the order.
func (o *Operator) propagate(u *userState, dirty []bool, src *engine.Event) error {
	env := u.env()
	for ix, s := range o.segs {
		if !dirty[ix] {
			continue
		}
		in, err := evalRule(s.rule, s, env)
		if err != nil {
			return fmt.Errorf("evaluating segment %s: %w", s.id, err)
		}
		if in == has(u.rec.In, s.id) {
			continue
		}
		setIn(&u.rec.In, s.id, in)
		env.in, u.recDirty = u.rec.In, true
		for _, d := range o.dependents[ix] {
			dirty[d] = true
		}
		if err := o.setMember(u, s, in, src); err != nil {
			return err
		}
	}
	return nil
}

// schedule prunes s's window counters at the clock and sets the segment's
// timer at the earliest time one of its event rules changes result with no
// further event, or cancels it if none will.
func (o *Operator) schedule(u *userState, s *segment) error {
	if !s.windows {
		return nil
	}
	due, found := int64(0), false
	for _, e := range s.leaves {
		ce, err := u.counter(e)
		if err != nil {
			return err
		}
		if ce.c.prune(e, u.clock) {
			ce.dirty = true
		}
		if t, ok := ce.c.nextFlip(e, u.clock); ok && (!found || t < due) {
			due, found = t, true
		}
	}
	if !found {
		return u.ctx.CancelTimer(timerPrefix + s.id)
	}
	return u.ctx.SetTimer(timerPrefix+s.id, due, nil)
}

// sortedSubs returns the keys of the loaded counters in order, so that
// writes reach the batch (and the changelog) in a deterministic order.
func (u *userState) sortedSubs() []string {
	subs := make([]string, 0, len(u.counters))
	for k := range u.counters {
		subs = append(subs, k)
	}
	sort.Strings(subs)
	return subs
}
