package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cairn-cjo/cairn/state"
)

var errStopScan = errors.New("stop scan")

func (c *partitionCore) setTimer(op, user, id string, due int64, payload []byte) error {
	if err := c.cancelTimer(op, user, id); err != nil {
		return err
	}
	c.timerDelta++
	v := append([]byte{state.ValueVersion}, payload...)
	if err := c.batch.Set(state.TimerKey(c.p, due, op, user, id), v); err != nil {
		return err
	}
	idx := binary.BigEndian.AppendUint64(nil, uint64(due))
	if err := c.batch.Set(state.TimerIndexKey(c.p, user, op, id), idx); err != nil {
		return err
	}
	c.nextDue = min(c.nextDue, due)
	return nil
}

func (c *partitionCore) cancelTimer(op, user, id string) error {
	ik := state.TimerIndexKey(c.p, user, op, id)
	old, err := c.batch.Get(ik)
	if err != nil || old == nil {
		return err
	}
	if len(old) != 8 {
		return fmt.Errorf("reading timer index %x: bad value", ik)
	}
	due := int64(binary.BigEndian.Uint64(old))
	if err := c.batch.Delete(state.TimerKey(c.p, due, op, user, id)); err != nil {
		return err
	}
	c.timerDelta--
	return c.batch.Delete(ik)
}

// nextTimer returns the earliest timer of the partition, if any. The scan
// starts at nextDue when it is known, a lower bound of every timer's due
// time, so it does not walk the tombstones of timers already fired.
func (c *partitionCore) nextTimer() (state.Key, []byte, bool, error) {
	var (
		key     state.Key
		payload []byte
		found   bool
	)
	pre := state.TimerPrefix(c.p)
	lo := pre
	if c.nextDue != minDue {
		lo = state.TimerKey(c.p, c.nextDue, "", "", "")
	}
	err := c.batch.Scan(lo, state.PrefixEnd(pre), func(k, v []byte) error {
		dk, err := state.DecodeKey(k)
		if err != nil {
			return err
		}
		if len(v) == 0 || v[0] != state.ValueVersion {
			return fmt.Errorf("reading timer %x: %w", k, state.ErrBadValue)
		}
		key, payload, found = dk, append([]byte(nil), v[1:]...), true
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return state.Key{}, nil, false, err
	}
	return key, payload, found, nil
}

// fireDue fires, in due order, every timer due at or before upTo. Timers set
// by a firing that are themselves due by upTo fire in the same call.
func (c *partitionCore) fireDue(upTo int64) error {
	_, _, err := c.fireDueBudget(upTo, -1)
	return err
}

// fireDueBudget is fireDue firing at most budget timers (all if budget < 0).
// It returns the due time of the last timer fired and whether every timer
// due by upTo has fired.
func (c *partitionCore) fireDueBudget(upTo int64, budget int) (last int64, done bool, err error) {
	last = minDue
	for fired := 0; c.nextDue <= upTo; fired++ {
		if budget >= 0 && fired >= budget {
			return last, false, nil
		}
		k, payload, ok, err := c.nextTimer()
		if err != nil {
			return last, false, err
		}
		if !ok {
			c.nextDue = math.MaxInt64
			return last, true, nil
		}
		c.nextDue = k.Due
		if k.Due > upTo {
			return last, true, nil
		}
		if err := c.fire(k, payload); err != nil {
			return last, false, err
		}
		last = k.Due
	}
	return last, true, nil
}

func (c *partitionCore) fire(k state.Key, payload []byte) error {
	if err := c.batch.Delete(k.Encode()); err != nil {
		return err
	}
	if err := c.batch.Delete(state.TimerIndexKey(c.p, k.User, k.Operator, k.ID)); err != nil {
		return err
	}
	c.timersFired++
	c.timerDelta--
	op, ok := c.byName[k.Operator]
	if !ok {
		c.log.Warn("dropping timer of unknown operator", "operator", k.Operator, "user", k.User, "timer", k.ID)
		return nil
	}
	t := &Timer{ID: k.ID, Due: k.Due, Payload: payload}
	if dead, msg := c.poison.deadTimer(k); dead {
		c.deadTimer(k, payload, msg)
		return nil
	}
	ctx := &Context{core: c, op: k.Operator, user: k.User, now: k.Due}
	if err := op.OnTimer(ctx, t); err != nil {
		return asOperatorFailure(fmt.Errorf("operator %s on %s of %s: %w", k.Operator, t.Cause(), k.User, err), func() string { return timerKey(k) })
	}
	return asOperatorFailure(c.drainInternal(), func() string { return timerKey(k) })
}

// pendingTimers counts the partition's timers (committed view plus batch).
func (c *partitionCore) pendingTimers() (int, error) {
	n := 0
	lo := state.TimerPrefix(c.p)
	err := c.batch.Scan(lo, state.PrefixEnd(lo), func(_, _ []byte) error { n++; return nil })
	return n, err
}
