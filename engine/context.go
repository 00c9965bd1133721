package engine

import (
	"fmt"
	"log/slog"

	"github.com/cairn-cjo/cairn/state"
)

// ProfileOperator is the state namespace of user profiles. Events named
// EventProfileSet and EventProfileUnset update the profile before any
// operator sees them.
const (
	ProfileOperator   = "$profile"
	EventProfileSet   = "$profile_set"
	EventProfileUnset = "$profile_unset"
)

// Context is an operator's view of one user on one partition during one
// event or timer firing. Reads see every write made earlier in the same
// transaction. A Context is only valid during the call it was passed to and
// must not be retained or shared between goroutines.
type Context struct {
	core    *partitionCore
	op      string
	user    string
	now     int64
	profile map[string]any
}

// UserID is the user the call is about.
func (c *Context) UserID() string { return c.user }

// Partition is the input partition being processed.
func (c *Context) Partition() int32 { return c.core.p }

// Now is the event time of the call: the event's ts for an event, the due
// time for a timer. It never depends on the wall clock of a replay.
func (c *Context) Now() int64 { return c.now }

// Clock is the partition clock (design §3): the largest event time seen.
func (c *Context) Clock() int64 { return c.core.clock }

// Logger returns the partition's logger.
func (c *Context) Logger() *slog.Logger { return c.core.log }

// Profile returns the user's profile. The map must not be modified.
func (c *Context) Profile() (map[string]any, error) {
	if c.profile != nil {
		return c.profile, nil
	}
	p, err := c.core.profile(c.user)
	if err != nil {
		return nil, err
	}
	c.profile = p
	return p, nil
}

func (c *Context) userKey(sub []byte) []byte {
	return state.UserKey(c.core.p, c.user, c.op, sub)
}

// Get returns the operator's value for sub under the current user, or nil.
func (c *Context) Get(sub []byte) ([]byte, error) { return c.core.batch.Get(c.userKey(sub)) }

// Set writes the operator's value for sub under the current user.
func (c *Context) Set(sub, value []byte) error { return c.core.batch.Set(c.userKey(sub), value) }

// Delete removes the operator's value for sub under the current user.
func (c *Context) Delete(sub []byte) error { return c.core.batch.Delete(c.userKey(sub)) }

// Scan calls fn, in key order, for each of the operator's keys of the
// current user that start with prefix. fn receives the sub key.
func (c *Context) Scan(prefix []byte, fn func(sub, value []byte) error) error {
	base := state.UserPrefix(c.core.p, c.user, c.op)
	lo := append(append([]byte(nil), base...), prefix...)
	return c.core.batch.Scan(lo, state.PrefixEnd(lo), func(k, v []byte) error {
		return fn(k[len(base):], v)
	})
}

// GetShared returns the operator's partition-wide value for sub, or nil.
func (c *Context) GetShared(sub []byte) ([]byte, error) {
	return c.core.batch.Get(state.SharedKey(c.core.p, c.op, sub))
}

// SetShared writes the operator's partition-wide value for sub.
func (c *Context) SetShared(sub, value []byte) error {
	return c.core.batch.Set(state.SharedKey(c.core.p, c.op, sub), value)
}

// DeleteShared removes the operator's partition-wide value for sub.
func (c *Context) DeleteShared(sub []byte) error {
	return c.core.batch.Delete(state.SharedKey(c.core.p, c.op, sub))
}

// SetTimer schedules (or reschedules) the timer id for the current user.
func (c *Context) SetTimer(id string, due int64, payload []byte) error {
	return c.core.setTimer(c.op, c.user, id, due, payload)
}

// CancelTimer deletes the timer id of the current user, if it exists.
func (c *Context) CancelTimer(id string) error {
	return c.core.cancelTimer(c.op, c.user, id)
}

// Emit produces out in the current transaction. In shadow mode
// (Config.ShadowUntil) an output of a call whose event time is before the
// cut is dropped instead: Emit is for actions, which must not be sent
// twice when state is rebuilt from the log; use Upsert for aggregates.
func (c *Context) Emit(out Output) { c.core.emit(out, c.now) }

// Upsert produces out at the end of the current transaction; of several
// upserts with the same topic and key in one transaction only the last is
// produced. Use it for aggregates on compacted topics.
func (c *Context) Upsert(out Output) { c.core.upsert(out) }

// TxnBuffer returns the operator's buffer for the current transaction on
// this partition, made by create on the first call in the transaction. The
// engine hands it to the operator's Flush before the transaction commits and
// forgets it when the transaction ends, committed or aborted, so a buffer
// never outlives its transaction and an aborted one leaves no trace. The
// operator must implement Flusher; TxnBuffer panics otherwise.
//
// Cost: one map lookup.
func (c *Context) TxnBuffer(create func() any) any {
	return c.core.txnBuffer(c.op, create)
}

// EmitEvent queues an internal event for the current user. It is handed to
// the operators that list it after the current event, in the same
// transaction. Its name must start with "$".
func (c *Context) EmitEvent(ev Event) error {
	if len(ev.Name) == 0 || ev.Name[0] != '$' {
		return fmt.Errorf("emitting internal event %q: name must start with $", ev.Name)
	}
	ev.UserID = c.user
	c.core.internal = append(c.core.internal, ev)
	return nil
}

// GetOf returns another operator's value for sub under the current user, as
// committed so far in this transaction, or nil. It is read-only: an
// operator only ever writes its own state. Journeys use it to ask the
// segment operator about membership.
func (c *Context) GetOf(op string, sub []byte) ([]byte, error) {
	return c.core.batch.Get(state.UserKey(c.core.p, c.user, op, sub))
}

// GetSharedOf returns another operator's partition-wide value for sub, or
// nil. It is read-only.
func (c *Context) GetSharedOf(op string, sub []byte) ([]byte, error) {
	return c.core.batch.Get(state.SharedKey(c.core.p, op, sub))
}

// ScanSharedOf calls fn, in key order, for each of op's partition-wide keys
// that start with prefix; fn receives the sub key. It is read-only.
func (c *Context) ScanSharedOf(op string, prefix []byte, fn func(sub, value []byte) error) error {
	base := state.SharedKey(c.core.p, op, nil)
	lo := append(append([]byte(nil), base...), prefix...)
	return c.core.batch.Scan(lo, state.PrefixEnd(lo), func(k, v []byte) error {
		return fn(k[len(base):], v)
	})
}

// ForUser returns a Context for another user of the same partition, with
// the same operator and time. It is for partition-level work, such as a
// broadcast timer (set with an empty user id through a Context from
// ForUser("")) that enters every member of a segment: the caller must only
// pass users that belong to this partition, such as members read from the
// partition's own state.
func (c *Context) ForUser(user string) *Context {
	return &Context{core: c.core, op: c.op, user: user, now: c.now}
}
