package journey

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Action is the JSON value of a record on actions.<channel> and on the
// suppressed topic (docs/actions.md). Its key is the user id. Channel
// senders may decode records into it. It is a plain value with no
// synchronization.
type Action struct {
	// ActionID is "journey:version:user:entry seq:node". It is the same on
	// every replay, so senders use it as their idempotency key.
	ActionID      string            `json:"action_id"`
	Journey       string            `json:"journey"`
	Version       int               `json:"version"`
	Node          string            `json:"node"`
	UserID        string            `json:"user_id"`
	Channel       string            `json:"channel"`
	Template      string            `json:"template"`
	Params        map[string]string `json:"params"`
	TS            int64             `json:"ts"`       // event time it fired, ms
	EntryTS       int64             `json:"entry_ts"` // event time of the entry, ms
	Cause         string            `json:"cause"`    // event id, topic/partition@offset or timer:<id>@<due>
	Transactional bool              `json:"transactional,omitempty"`
	// Reason, Policy and Rule are set on suppressed actions only.
	Reason string `json:"reason,omitempty"` // quiet_hours or frequency_cap
	Policy string `json:"policy,omitempty"` // id of the policy that suppressed it
	Rule   string `json:"rule,omitempty"`   // the rule, e.g. "push max 3 per 24h"
}

// ActionID returns the action id of node in entry number seq of user: the
// same on every replay, and unique because a node runs at most once per
// entry (the node graph is acyclic).
func ActionID(journey string, version int, user string, seq uint32, node string) string {
	return journey + ":" + strconv.Itoa(version) + ":" + user + ":" +
		strconv.FormatUint(uint64(seq), 10) + ":" + node
}

// act sends, suppresses or defers the action of node n. It reports whether
// the action was deferred by quiet hours, in which case the instance stays
// on n until the timer set here.
func (r *run) act(id string, rec *userRec, def *journeyDef, n *node) (bool, error) {
	a := &n.action
	user := r.ctx.UserID()
	out := Action{
		ActionID: ActionID(id, def.version, user, rec.Seq, n.id),
		Journey:  id, Version: def.version, Node: n.id, UserID: user,
		Channel: a.channel, Template: a.template, Params: map[string]string{},
		TS: r.now, EntryTS: rec.Entry.TS, Cause: r.cause, Transactional: a.transactional,
	}
	if err := r.render(rec, a, out.Params); err != nil {
		return false, err
	}
	st := r.stat(id, def.version)
	if !a.transactional {
		v, err := r.checkPolicy(a.channel)
		if err != nil {
			return false, err
		}
		if v.deferTo > 0 {
			return true, r.setTimer(id, rec, v.deferTo, timerDefer)
		}
		if v.reason != "" {
			out.Reason, out.Policy, out.Rule = v.reason, v.policy, v.rule
			st.Suppressed++
			st.node(n.id).Suppressed++
			return false, r.emit(r.o.opts.SuppressedTopic, &out)
		}
		if err := r.noteSend(a.channel); err != nil {
			return false, err
		}
	}
	st.Actions++
	st.node(n.id).Actions++
	return false, r.emit(r.o.opts.ActionTopicPrefix+a.channel, &out)
}

func (r *run) render(rec *userRec, a *actionSpec, dst map[string]string) error {
	vars, err := r.env(rec).exprVars(a.profile)
	if err != nil {
		return err
	}
	for _, k := range a.paramKeys {
		s, err := a.params[k].Render(vars)
		if err != nil {
			r.evalError(err)
		}
		dst[k] = s
	}
	return nil
}

func (r *run) emit(topic string, a *Action) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding action %s: %w", a.ActionID, err)
	}
	r.ctx.Emit(engineOutput(topic, a.UserID, b))
	return nil
}

// evalError counts a runtime error of an expression or template against
// the journey being run, and logs it.
func (r *run) evalError(err error) {
	r.ctx.Logger().Debug("journey condition failed", "journey", r.cur.id,
		"user", r.ctx.UserID(), "err", err)
	if r.cur.id != "" {
		r.stat(r.cur.id, r.cur.v).EvalErrors++
	}
}
