package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/cairn-cjo/cairn/state"
)

// timers returns the partition's timer queue. The first call after load
// builds it with one scan of the partition's timer keyspace (store plus
// open batch); from then on every timer write goes through setTimer,
// cancelTimer and fire, which keep the queue and the batch in step.
func (c *partitionCore) timers() (*timerQueue, error) {
	if c.timerq != nil {
		return c.timerq, nil
	}
	q := newTimerQueue()
	pre := state.TimerPrefix(c.p)
	err := c.batch.Scan(pre, state.PrefixEnd(pre), func(k, _ []byte) error {
		if len(k) <= state.TimerIdentityAt {
			return fmt.Errorf("loading timer %x: %w", k, state.ErrBadKey)
		}
		q.Push(string(k)) // keys come in order: no sifting
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading the timers of partition %d: %w", c.p, err)
	}
	c.timerq = q
	return q, nil
}

// timerWriteFailed forgets the timer queue after a failed batch write, so
// that it is rebuilt from what the batch holds; the transaction is dropped
// anyway, but the queue is never left to disagree with the batch.
func (c *partitionCore) timerWriteFailed(err error) error {
	c.timerq = nil
	return err
}

func (c *partitionCore) setTimer(op, user, id string, due int64, payload []byte) error {
	q, err := c.timers()
	if err != nil {
		return err
	}
	k := state.TimerKey(c.p, due, op, user, id)
	if old, ok := q.Remove(k[state.TimerIdentityAt:]); ok {
		c.timerDelta--
		// The same due time writes the same key: the Set below replaces it.
		if old != string(k) {
			if err := c.batch.Delete([]byte(old)); err != nil {
				return c.timerWriteFailed(err)
			}
		}
	}
	c.timerDelta++
	v := append([]byte{state.ValueVersion}, payload...)
	if err := c.batch.Set(k, v); err != nil {
		return c.timerWriteFailed(err)
	}
	idx := binary.BigEndian.AppendUint64(nil, uint64(due))
	if err := c.batch.Set(state.TimerIndexKey(c.p, user, op, id), idx); err != nil {
		return c.timerWriteFailed(err)
	}
	q.Push(string(k))
	return nil
}

func (c *partitionCore) cancelTimer(op, user, id string) error {
	q, err := c.timers()
	if err != nil {
		return err
	}
	old, ok := q.Remove(state.TimerKey(c.p, 0, op, user, id)[state.TimerIdentityAt:])
	if !ok {
		return nil
	}
	c.timerDelta--
	if err := c.batch.Delete([]byte(old)); err != nil {
		return c.timerWriteFailed(err)
	}
	if err := c.batch.Delete(state.TimerIndexKey(c.p, user, op, id)); err != nil {
		return c.timerWriteFailed(err)
	}
	return nil
}

// nextDue returns the due time of the partition's earliest timer,
// math.MaxInt64 if it has none.
func (c *partitionCore) nextDue() (int64, error) {
	q, err := c.timers()
	if err != nil {
		return 0, err
	}
	return q.MinDue(), nil
}

// fireDue fires, in due order, every timer due at or before upTo. Timers set
// by a firing that are themselves due by upTo fire in the same call.
func (c *partitionCore) fireDue(upTo int64) error {
	_, _, err := c.fireDueWhile(upTo, nil)
	return err
}

// fireDueWhile is fireDue asking more, if not nil, before each firing and
// stopping when it says no. It returns the due time of the last timer fired
// (minDue if none) and whether every timer due by upTo has fired.
func (c *partitionCore) fireDueWhile(upTo int64, more func() bool) (last int64, done bool, err error) {
	last = minDue
	for {
		q, err := c.timers() // again each time: a failed write in a firing forgets it
		if err != nil {
			return last, false, err
		}
		if q.MinDue() > upTo {
			return last, true, nil
		}
		if more != nil && !more() {
			return last, false, nil
		}
		key, _ := q.PopMin()
		if last, err = c.fire(key); err != nil {
			return last, false, err
		}
	}
}

// fire deletes the timer with key, just taken off the queue, and hands it
// to its operator. It returns the timer's due time.
func (c *partitionCore) fire(key string) (int64, error) {
	kb := []byte(key)
	k, err := state.DecodeKey(kb)
	if err != nil {
		return minDue, c.timerWriteFailed(fmt.Errorf("firing a timer: %w", err))
	}
	payload, err := c.timerPayload(kb)
	if err != nil {
		return k.Due, c.timerWriteFailed(err)
	}
	if err := c.batch.Delete(kb); err != nil {
		return k.Due, c.timerWriteFailed(err)
	}
	if err := c.batch.Delete(state.TimerIndexKey(c.p, k.User, k.Operator, k.ID)); err != nil {
		return k.Due, c.timerWriteFailed(err)
	}
	c.timersFired++
	c.timerDelta--
	return k.Due, c.runTimer(k, payload)
}

// timerPayload reads the payload of the timer with key from the batch.
func (c *partitionCore) timerPayload(key []byte) ([]byte, error) {
	v, err := c.batch.Get(key)
	if err != nil {
		return nil, fmt.Errorf("reading timer %x: %w", key, err)
	}
	if len(v) == 0 || v[0] != state.ValueVersion {
		// nil too: the queue holds a timer the store does not.
		return nil, fmt.Errorf("reading timer %x: %w", key, state.ErrBadValue)
	}
	return v[1:], nil
}

// runTimer hands the fired timer k to its operator, or dead-letters it.
func (c *partitionCore) runTimer(k state.Key, payload []byte) error {
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
	q, err := c.timers()
	if err != nil {
		return 0, err
	}
	return q.Len(), nil
}
