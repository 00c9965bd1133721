package engine

import (
	"io"
	"log/slog"
	"time"

	"github.com/cairn-cjo/cairn/state"
)

// Local runs operators over one partition in memory, with no Kafka, through
// the same code the engine's partition workers run (clock, timers, profiles,
// internal events, upsert coalescing). Every call commits its writes, as if
// each event were its own transaction. It is for deterministic operator tests
// and reference checks; it is not safe for concurrent use.
type Local struct {
	core   *partitionCore
	store  state.Store
	outs   []Output
	offset int64
}

// NewLocal returns a Local running ops over partition p of an in-memory
// store.
func NewLocal(p int32, ops ...Operator) (*Local, error) {
	st, err := state.OpenPebble("", state.Options{InMemory: true})
	if err != nil {
		return nil, err
	}
	l := &Local{store: st}
	l.core = newPartitionCore(p, st, ops, DefaultStateCacheBytes, slog.New(slog.NewTextHandler(io.Discard, nil)))
	l.core.sink = func(o Output) { l.outs = append(l.outs, o) }
	if err := l.core.load(); err != nil {
		return nil, err
	}
	return l, nil
}

// SetShadowUntil puts the Local in shadow mode (Config.ShadowUntil):
// outputs emitted by calls whose event time is before t are dropped.
func (l *Local) SetShadowUntil(t time.Time) { l.core.shadowUntil = t.UnixMilli() }

// Process fires the timers due by ev.TS, processes ev and returns every
// output produced, upserts last. Events without a Topic get topic "local"
// and the next offset.
func (l *Local) Process(ev Event) ([]Output, error) {
	if ev.Topic == "" {
		ev.Topic, ev.Partition, ev.Offset = "local", l.core.p, l.offset
		l.offset++
	}
	return l.run(func() error {
		_, err := l.core.processEvent(&ev, nil)
		return err
	})
}

// AdvanceTo moves the partition clock to ts, as an idle partition's wall
// clock would, and returns the outputs of the timers that fired.
func (l *Local) AdvanceTo(ts int64) ([]Output, error) {
	return l.run(func() error { return l.core.advance(ts) })
}

func (l *Local) run(fn func() error) ([]Output, error) {
	l.outs = nil
	if err := fn(); err != nil {
		_ = l.core.drop()
		return nil, err
	}
	if err := l.core.flush(); err != nil {
		_ = l.core.drop()
		return nil, err
	}
	if err := l.core.batch.Commit(); err != nil {
		return nil, err
	}
	return l.outs, nil
}

// Clock returns the partition clock.
func (l *Local) Clock() int64 { return l.core.clock }

// Profile returns the committed profile of user.
func (l *Local) Profile(user string) (map[string]any, error) { return l.core.profile(user) }

// ScanUser calls fn for each committed key of op's state for user.
func (l *Local) ScanUser(user, op string, fn func(sub, value []byte) error) error {
	pre := state.UserPrefix(l.core.p, user, op)
	return l.store.Scan(pre, state.PrefixEnd(pre), func(k, v []byte) error { return fn(k[len(pre):], v) })
}

// ScanShared calls fn for each committed key of op's partition-wide state.
func (l *Local) ScanShared(op string, fn func(sub, value []byte) error) error {
	pre := state.SharedKey(l.core.p, op, nil)
	return l.store.Scan(pre, state.PrefixEnd(pre), func(k, v []byte) error { return fn(k[len(pre):], v) })
}

// PendingTimers counts the partition's timers.
func (l *Local) PendingTimers() (int, error) { return l.core.pendingTimers() }

// Close releases the in-memory store.
func (l *Local) Close() error {
	l.core.batch.Close()
	return l.store.Close()
}
