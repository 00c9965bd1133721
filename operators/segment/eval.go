package segment

import (
	"fmt"
	"log/slog"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/expr"
	"github.com/cairn-cjo/cairn/state"
)

// evalEnv is what a rule reads. A nil count or profile reads as zero or
// empty, which is how New evaluates rules for a user with no state.
type evalEnv struct {
	in      []string // segments the user is in, updated in dependency order
	lists   []string // uploaded lists the user is on
	count   func(e *eventRule) (int, error)
	profile func() (map[string]any, error)
	log     *slog.Logger
}

func evalRule(r *rule, s *segment, env *evalEnv) (bool, error) {
	switch r.kind {
	case ruleEvent:
		n := 0
		if env.count != nil {
			var err error
			if n, err = env.count(r.event); err != nil {
				return false, err
			}
		}
		return r.event.test(n), nil
	case ruleProfile:
		return evalProfile(r, env)
	case ruleAll, ruleAny:
		want := r.kind == ruleAny
		for _, k := range r.kids {
			ok, err := evalRule(k, s, env)
			if err != nil || ok == want {
				return want, err
			}
		}
		return !want, nil
	case ruleNot:
		ok, err := evalRule(r.kids[0], s, env)
		return !ok, err
	case ruleSegment:
		return has(env.in, r.ref), nil
	case ruleList:
		return has(env.lists, s.id), nil
	}
	panic(fmt.Sprintf("segment %s: rule kind %d", s.id, r.kind)) // parser invariant
}

// evalProfile evaluates a profile rule. A runtime error (a type mismatch on
// an attribute) is a non-match, logged at debug level: it must not stop the
// partition, and it is deterministic, so a replay gives the same result.
func evalProfile(r *rule, env *evalEnv) (bool, error) {
	var p map[string]any
	if env.profile != nil {
		var err error
		if p, err = env.profile(); err != nil {
			return false, err
		}
	}
	ok, err := r.prog.Eval(expr.Env(nil, nil, p))
	if err != nil && env.log != nil {
		env.log.Debug("segment profile rule failed", "field", r.field, "err", err)
	}
	return ok, nil
}

// userState is one call's view of the current user: loaded lazily, written
// back by save. It lives for one OnEvent or OnTimer call.
type userState struct {
	o        *Operator
	ctx      *engine.Context
	rec      userRec
	recDirty bool
	// fresh: the user has no record, hence no counters (a counter is only
	// ever written together with the record), so counters need no reads.
	fresh    bool
	counters map[string]*counterEntry // by counter sub key
	clock    int64
}

type counterEntry struct {
	c     counter
	dirty bool
}

func (o *Operator) loadUser(ctx *engine.Context) (*userState, error) {
	u := &userState{o: o, ctx: ctx, counters: map[string]*counterEntry{}, clock: ctx.Clock()}
	v, err := ctx.Get(keyUser)
	if err != nil {
		return nil, fmt.Errorf("reading segments of user: %w", err)
	}
	if v == nil {
		u.fresh = true
		return u, nil
	}
	if err := state.DecodeValue(v, &u.rec); err != nil {
		return nil, fmt.Errorf("reading segments of user: %w", err)
	}
	return u, nil
}

func (u *userState) counter(e *eventRule) (*counterEntry, error) {
	if ce, ok := u.counters[string(e.sub)]; ok {
		return ce, nil
	}
	ce := &counterEntry{}
	u.counters[string(e.sub)] = ce
	if u.fresh {
		return ce, nil
	}
	v, err := u.ctx.Get(e.sub)
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := state.DecodeValue(v, &ce.c); err != nil {
			return nil, fmt.Errorf("reading counter %s: %w", e.sub, err)
		}
	}
	return ce, nil
}

func (u *userState) count(e *eventRule) (int, error) {
	ce, err := u.counter(e)
	if err != nil {
		return 0, err
	}
	return ce.c.count(e, u.clock), nil
}

func (u *userState) env() *evalEnv {
	return &evalEnv{
		in: u.rec.In, lists: u.rec.Lists, count: u.count,
		profile: u.ctx.Profile, log: u.ctx.Logger(),
	}
}

// save writes back the changed counters and the record. Empty counters
// are deleted; the record is kept for every user the operator has seen,
// since its Z field marks under which definitions the user was evaluated.
func (u *userState) save() error {
	for _, sub := range u.sortedSubs() {
		if ce := u.counters[sub]; ce.dirty {
			if err := u.saveCounter([]byte(sub), &ce.c); err != nil {
				return err
			}
		}
	}
	if !u.recDirty {
		return nil
	}
	b, err := state.EncodeValue(&u.rec)
	if err != nil {
		return err
	}
	return u.ctx.Set(keyUser, b)
}

func (u *userState) saveCounter(sub []byte, c *counter) error {
	if c.N == 0 && len(c.TS) == 0 {
		return u.ctx.Delete(sub)
	}
	b, err := state.EncodeValue(c)
	if err != nil {
		return err
	}
	return u.ctx.Set(sub, b)
}
