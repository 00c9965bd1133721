package journey

import (
	"fmt"
	"strconv"
)

// enter starts entry number rec.Seq+1 of the user in def: held out (it only
// waits for the goal window to end) or stepping from the start node.
func (r *run) enter(id string, rec *userRec, def *journeyDef) error {
	rec.Seq++
	rec.Version, rec.Entry, rec.Active = def.version, storeEvent(r.event), true
	rec.Node, rec.NodeTS, rec.Due, rec.GoalOpen, rec.GoalDeadline = "", 0, 0, false, 0
	rec.Holdout = def.holdout > 0 && float64(hash10000("holdout", id, r.ctx.UserID(),
		strconv.FormatUint(uint64(rec.Seq), 10))) < def.holdout*100
	if def.goal != nil {
		rec.GoalOpen = true
		if def.goal.within > 0 {
			rec.GoalDeadline = r.now + def.goal.within
		}
	}
	r.touch(id)
	st := r.stat(id, def.version)
	st.Active++
	if rec.Holdout {
		st.EnteredHoldout++
		// New rejects a holdout without goal.within, so the deadline is set.
		return r.setTimer(id, rec, rec.GoalDeadline, timerHoldout)
	}
	st.Entered++
	return r.step(id, rec, def, def.start)
}

// exit ends the active instance for reason.
func (r *run) exit(id string, rec *userRec, reason string) error {
	if err := r.cancelTimer(id, rec); err != nil {
		return err
	}
	if rec.Node != "" {
		r.leave(id, rec)
	}
	st := r.stat(id, rec.Version)
	st.Active--
	st.Exited++
	if st.Exits == nil {
		st.Exits = map[string]int64{}
	}
	st.Exits[reason]++
	rec.Active, rec.LastExit = false, r.now
	if rec.GoalDeadline == 0 {
		rec.GoalOpen = false
	}
	r.touch(id)
	return nil
}

// step moves the instance through nodes from next until it must wait (a
// wait node or a deferred action) or exits. The node graph is acyclic, so
// it visits each node at most once.
func (r *run) step(id string, rec *userRec, def *journeyDef, next string) error {
	r.cur = statKey{id, def.version}
	for steps := 0; next != ""; steps++ {
		if steps > len(def.nodes) {
			panic(fmt.Sprintf("journey %s: cycle through %s: New must reject cycles", id, next))
		}
		n := def.nodes[next]
		r.arrive(id, rec, n)
		var err error
		switch n.kind {
		case kindWait:
			return r.startWait(id, rec, n)
		case kindAction:
			var deferred bool
			if deferred, err = r.act(id, rec, def, n); deferred || err != nil {
				return err
			}
			next = n.next
		case kindBranch:
			next, err = r.chooseBranch(rec, n)
		case kindSplit:
			next = r.chooseSplit(id, rec, n)
		case kindExit:
			next = ""
		}
		if err != nil {
			return err
		}
		r.leave(id, rec)
	}
	return r.exit(id, rec, "completed")
}

func (r *run) arrive(id string, rec *userRec, n *node) {
	rec.Node, rec.NodeTS = n.id, r.now
	ns := r.stat(id, rec.Version).node(n.id)
	ns.Entered++
	ns.Current++
	r.touch(id)
}

func (r *run) leave(id string, rec *userRec) {
	ns := r.stat(id, rec.Version).node(rec.Node)
	ns.Current--
	ns.Exited++
	rec.Node, rec.NodeTS = "", 0
	r.touch(id)
}

func (r *run) startWait(id string, rec *userRec, n *node) error {
	w := &n.wait
	switch w.kind {
	case waitFor:
		return r.setTimer(id, rec, r.now+w.dur, timerWait)
	case waitUntil:
		prof, err := r.ctx.Profile()
		if err != nil {
			return err
		}
		tz, _ := prof["tz"].(string)
		return r.setTimer(id, rec, nextClock(r.now, r.o.location(tz), w.until), timerWait)
	}
	if w.timeout > 0 {
		return r.setTimer(id, rec, r.now+w.timeout, timerTimeout)
	}
	return nil
}

func (r *run) chooseBranch(rec *userRec, n *node) (string, error) {
	env := r.env(rec)
	for _, b := range n.branches {
		ok, err := env.check(b.when)
		if err != nil || ok {
			return b.next, err
		}
	}
	return n.elseNext, nil
}

func (r *run) chooseSplit(id string, rec *userRec, n *node) string {
	h := hash10000("split", id, r.ctx.UserID(), strconv.FormatUint(uint64(rec.Seq), 10), n.id) % 100
	for _, s := range n.splits {
		if h < s.weight {
			return s.next
		}
		h -= s.weight
	}
	panic("journey: split weights do not sum to 100: New must reject them")
}

func (r *run) setTimer(id string, rec *userRec, due int64, kind timerKind) error {
	pl, err := encode(timerPayload{Journey: id, Version: rec.Version, Seq: rec.Seq, Node: rec.Node, Kind: kind})
	if err != nil {
		return err
	}
	rec.Due = due
	r.touch(id)
	return r.ctx.SetTimer(timerID(id), due, pl)
}

func (r *run) cancelTimer(id string, rec *userRec) error {
	if rec.Due == 0 {
		return nil
	}
	rec.Due = 0
	r.touch(id)
	return r.ctx.CancelTimer(timerID(id))
}

// onTimer resumes the instance named by pl, unless it has moved on.
func (r *run) onTimer(pl timerPayload) error {
	id := pl.Journey
	rec, err := r.rec(id)
	if err != nil {
		return err
	}
	if !rec.Active || rec.Version != pl.Version || rec.Seq != pl.Seq || rec.Node != pl.Node {
		return nil // stale: the instance moved on and this timer was replaced
	}
	rec.Due = 0
	r.touch(id)
	def, err := r.live(id, rec)
	if err != nil || !rec.Active {
		return err
	}
	r.cur = statKey{id, rec.Version}
	if pl.Kind == timerHoldout {
		return r.exit(id, rec, "holdout_end")
	}
	n := def.nodes[rec.Node]
	if n == nil {
		// The version was edited in place and lost the node: there is no
		// way on. Bump the version instead of editing a loaded one.
		r.ctx.Logger().Warn("exiting journey instance on a node no longer defined",
			"journey", id, "version", rec.Version, "node", rec.Node, "user", r.ctx.UserID())
		return r.exit(id, rec, "removed")
	}
	switch pl.Kind {
	case timerTimeout:
		r.leave(id, rec)
		return r.step(id, rec, def, n.wait.onTimeout)
	case timerDefer:
		deferred, err := r.act(id, rec, def, n)
		if deferred || err != nil {
			return err
		}
	}
	r.leave(id, rec)
	return r.step(id, rec, def, n.next)
}
