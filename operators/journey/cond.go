package journey

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/expr"
	"github.com/cairn-cjo/cairn/operators/segment"
)

var errBadCount = errors.New(`want a comparison such as ">= 2", "== 0" or a number`)

// cond is a compiled condition. Implementations are immutable and safe for
// concurrent use; all per-call state lives in the evalEnv.
type cond interface {
	eval(e *evalEnv) (bool, error)
	// dids calls fn for every did condition, nested ones included.
	dids(fn func(*didCond))
}

// evalEnv is what a condition sees: the call (for the did-history and the
// profile), the current event (a synthetic "$timer" event in a timer
// firing) and the instance's entry event: entry, or else stored, made an
// event when the variables are first built.
type evalEnv struct {
	r        *run
	event    *engine.Event
	entry    *engine.Event
	stored   *storedEvent
	entryTS  int64
	vars     map[string]any // built on first use
	withProf bool           // vars holds the user's profile
}

// exprVars returns the variables of an expression; profile says whether
// the expression may read the profile (readsProfile). The profile costs a
// state read, the first time in a call, so it is only read for one that
// may: an expression that cannot name it sees the same result with an
// empty one.
func (e *evalEnv) exprVars(profile bool) (map[string]any, error) {
	if e.vars != nil && (e.withProf || !profile) {
		return e.vars, nil
	}
	var prof map[string]any
	if profile {
		var err error
		if prof, err = e.r.ctx.Profile(); err != nil {
			return nil, err
		}
	}
	if e.entry == nil && e.stored != nil {
		entry, err := e.stored.event(e.r.ctx.UserID())
		if err != nil {
			return nil, err
		}
		e.entry = entry
	}
	e.vars, e.withProf = expr.Env(e.event, e.entry, prof), profile
	return e.vars, nil
}

// readsProfile reports whether an expression or template source may read
// the profile variable: it names it, or $env, expr's map of every
// variable. A false answer is certain; a true one may be a string literal.
func readsProfile(src string) bool {
	return strings.Contains(src, "profile") || strings.Contains(src, "$env")
}

// check evaluates c (nil is true). A runtime error in an expression makes
// it false: it is counted and logged, not returned, so that one bad event
// does not stop the partition. Only state errors are returned.
func (e *evalEnv) check(c cond) (bool, error) {
	if c == nil {
		return true, nil
	}
	return c.eval(e)
}

type falseCond struct{}

func (falseCond) eval(*evalEnv) (bool, error) { return false, nil }
func (falseCond) dids(func(*didCond))         {}

// exprCond is an expression; profile says whether it may read the profile
// (readsProfile).
type exprCond struct {
	p       *expr.Program
	profile bool
}

func (c exprCond) eval(e *evalEnv) (bool, error) {
	vars, err := e.exprVars(c.profile)
	if err != nil {
		return false, err
	}
	ok, err := c.p.Eval(vars)
	if err != nil {
		e.r.evalError(err)
		return false, nil
	}
	return ok, nil
}

func (exprCond) dids(func(*didCond)) {}

type allCond []cond

func (c allCond) eval(e *evalEnv) (bool, error) {
	for _, x := range c {
		if ok, err := x.eval(e); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (c allCond) dids(fn func(*didCond)) {
	for _, x := range c {
		x.dids(fn)
	}
}

type anyCond []cond

func (c anyCond) eval(e *evalEnv) (bool, error) {
	for _, x := range c {
		if ok, err := x.eval(e); err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (c anyCond) dids(fn func(*didCond)) { allCond(c).dids(fn) }

type notCond struct{ c cond }

func (c notCond) eval(e *evalEnv) (bool, error) {
	ok, err := c.c.eval(e)
	return !ok && err == nil, err
}

func (c notCond) dids(fn func(*didCond)) { c.c.dids(fn) }

// inSegmentCond holds when the user is a member of a segment, as the
// segment operator's record of the user says (segment.InSegment: one point
// read). The segment operator runs before journeys on the same event, so
// the condition sees membership updated by that event.
type inSegmentCond struct{ segment string }

func (c inSegmentCond) eval(e *evalEnv) (bool, error) {
	ctx := e.r.ctx
	ok, err := segment.InSegment(func(sub []byte) ([]byte, error) {
		return ctx.GetOf(segment.OperatorName, sub)
	}, c.segment)
	if err != nil {
		return false, fmt.Errorf("reading segments of %s: %w", ctx.UserID(), err)
	}
	return ok, nil
}

func (inSegmentCond) dids(func(*didCond)) {}

// didCond counts the user's events named event in a window — since the
// instance's entry (inclusive) or within the last duration, both up to now —
// that match where, and compares the count with n.
type didCond struct {
	event      string
	sinceEntry bool
	within     int64 // ms
	where      cond
	op         string
	n          int
}

func (c *didCond) dids(fn func(*didCond)) {
	fn(c)
	if c.where != nil {
		c.where.dids(fn)
	}
}

func (c *didCond) eval(e *evalEnv) (bool, error) {
	hist, err := e.r.history(c.event)
	if err != nil {
		return false, err
	}
	now := e.r.now
	lo := now - c.within
	if c.sinceEntry {
		lo = e.entryTS
	}
	count := 0
	for i := range hist {
		h := &hist[i]
		if h.TS < lo || h.TS > now {
			continue
		}
		if c.where != nil {
			sub := &evalEnv{r: e.r, entry: e.entry, stored: e.stored, entryTS: e.entryTS,
				event: &engine.Event{Name: c.event, TS: h.TS, Props: h.Props, UserID: e.r.ctx.UserID()}}
			ok, err := c.where.eval(sub)
			if err != nil {
				return false, err
			}
			if !ok {
				continue
			}
		}
		count++
	}
	return compareCount(count, c.op, c.n), nil
}

func compareCount(count int, op string, n int) bool {
	switch op {
	case ">":
		return count > n
	case "<":
		return count < n
	case "<=":
		return count <= n
	case "==":
		return count == n
	case "!=":
		return count != n
	}
	return count >= n
}
