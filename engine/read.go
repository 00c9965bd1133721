package engine

import (
	"errors"
	"fmt"

	"github.com/cairn-cjo/cairn/state"
)

// ErrNotOwned is returned by the read methods for a user or partition this
// instance does not own; the caller forwards the request to the owner.
var ErrNotOwned = errors.New("partition not owned by this instance")

// UserPartition returns the input partition of user, or -1 before Run has
// learned the partition count.
func (e *Engine) UserPartition(user string) int32 {
	if e.partitions <= 0 {
		return -1
	}
	return KeyPartition([]byte(user), e.partitions)
}

// Owns reports whether this instance owns input partition p now. Safe for
// concurrent use.
func (e *Engine) Owns(p int32) bool { return e.owns(p) }

func (e *Engine) owns(p int32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.workers[p]
	return ok
}

// ReadUser calls fn for each committed state key of user under op (every
// operator when op is ""), with the operator name and sub key. It reads the
// committed view, so it never sees a transaction in flight. Safe for
// concurrent use.
func (e *Engine) ReadUser(user, op string, fn func(op string, sub, value []byte) error) error {
	p := e.UserPartition(user)
	if p < 0 || !e.owns(p) {
		return fmt.Errorf("reading user %s (partition %d): %w", user, p, ErrNotOwned)
	}
	pre := state.UserPrefix(p, user, op)
	return e.store.Scan(pre, state.PrefixEnd(pre), func(k, v []byte) error {
		dk, err := state.DecodeKey(k)
		if err != nil {
			return err
		}
		return fn(dk.Operator, dk.Sub, v)
	})
}

// ReadShared calls fn for each committed key of op's partition-wide state of
// p that starts with prefix. Safe for concurrent use.
func (e *Engine) ReadShared(p int32, op string, prefix []byte, fn func(sub, value []byte) error) error {
	if !e.owns(p) {
		return fmt.Errorf("reading partition %d: %w", p, ErrNotOwned)
	}
	base := state.SharedKey(p, op, nil)
	lo := append(append([]byte(nil), base...), prefix...)
	return e.store.Scan(lo, state.PrefixEnd(lo), func(k, v []byte) error { return fn(k[len(base):], v) })
}

// GetShared returns the committed value of op's partition-wide key sub on
// partition p, or nil. Safe for concurrent use.
func (e *Engine) GetShared(p int32, op string, sub []byte) ([]byte, error) {
	if !e.owns(p) {
		return nil, fmt.Errorf("reading partition %d: %w", p, ErrNotOwned)
	}
	return e.store.Get(state.SharedKey(p, op, sub))
}

// Partitions returns the input partition count (0 before Run starts).
func (e *Engine) Partitions() int32 { return e.partitions }

// Profile returns the committed profile of user. Safe for concurrent use.
func (e *Engine) Profile(user string) (map[string]any, error) {
	p := map[string]any{}
	err := e.ReadUser(user, ProfileOperator, func(_ string, sub, value []byte) error {
		if len(sub) != 0 {
			return nil
		}
		return state.DecodeValue(value, &p)
	})
	return p, err
}

// GetUser returns the committed value of op's key sub for user, or nil.
// Safe for concurrent use.
func (e *Engine) GetUser(user, op string, sub []byte) ([]byte, error) {
	p := e.UserPartition(user)
	if p < 0 || !e.owns(p) {
		return nil, fmt.Errorf("reading user %s (partition %d): %w", user, p, ErrNotOwned)
	}
	return e.store.Get(state.UserKey(p, user, op, sub))
}
