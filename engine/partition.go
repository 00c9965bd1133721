package engine

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/cairn-cjo/cairn/state"
)

// maxInternalEvents bounds the internal events one input event may cause, so
// that two operators that trigger each other cannot loop forever.
const maxInternalEvents = 256

// minDue is the due time fireDueWhile reports when it fired nothing.
const minDue = math.MinInt64

// clockKeyName is the meta key holding the partition clock; it is written
// through the batch, so it is changelogged like any other state.
const clockKeyName = "clock"

// partitionCore runs operators over one partition's state. It is the part of
// a partition worker that knows nothing about Kafka: the engine's workers and
// Local both drive it. It is owned by one goroutine.
type partitionCore struct {
	p       int32
	store   state.Store
	batch   state.Batch           // cache, as a Batch
	cache   *state.CachedBatch    // per-user read cache over the store's batch
	byEvent map[string][]Operator // listed and listen-to-all operators, in the order given
	always  []Operator            // operators with Events() == nil
	byName  map[string]Operator
	ops     []Operator // in the order given, for Flush
	log     *slog.Logger

	clock      int64 // largest event time seen, ms; persisted under clockKeyName by flush
	clockDirty bool  // setClock moved clock since the last flush
	// timerq indexes every timer of the store and the open batch; nil
	// until timers() loads it, and again after load (timers.go).
	timerq *timerQueue

	// wallLimit, if set, returns the largest timestamp the clock may take
	// from an event (wall clock + 5 min, design §3).
	wallLimit func() int64

	sink func(Output)
	// shadowUntil (ms) drops emitted outputs of calls whose event time is
	// before it (Config.ShadowUntil); shadowed counts them. Zero: off.
	shadowUntil int64
	shadowed    func(Output)
	// poison, if set, names timers that failed too often; deadTimer
	// dead-letters one instead of firing it (poison.go).
	poison    *poisonBook
	deadTimer func(k state.Key, payload []byte, msg string)
	upserts   []Output
	upsertAt  map[string]int
	internal  []Event
	bufs      map[string]any // operator name -> transaction buffer (Context.TxnBuffer)

	timersFired int64 // since the last commit or drop
	timerDelta  int64 // timers set minus timers removed, since the last commit or drop
}

// newPartitionCore returns the core of partition p; its read cache holds
// about cacheBytes (none if 0 or less).
func newPartitionCore(p int32, store state.Store, ops []Operator, cacheBytes int64, log *slog.Logger) *partitionCore {
	cache := state.NewCachedBatch(store.NewBatch(), cacheBytes)
	c := &partitionCore{
		p: p, store: store, batch: cache, cache: cache,
		byEvent: map[string][]Operator{}, byName: map[string]Operator{},
		upsertAt: map[string]int{}, bufs: map[string]any{}, log: log, ops: ops,
	}
	for _, op := range ops {
		c.byName[op.Name()] = op
		if op.Events() == nil {
			c.always = append(c.always, op)
		}
	}
	// byEvent[n] holds the operators that list n and those that listen to
	// everything, merged in the order given: an operator that runs after
	// another on one event runs after it on every event.
	for _, op := range ops {
		for _, n := range op.Events() {
			if _, ok := c.byEvent[n]; ok {
				continue
			}
			for _, o := range ops {
				if o.Events() == nil || slices.Contains(o.Events(), n) {
					c.byEvent[n] = append(c.byEvent[n], o)
				}
			}
		}
	}
	return c
}

// load reads the committed clock, forgets the timer queue, which the next
// timer operation rebuilds from the store, and empties the read cache. It
// is called after a restore and after a transaction is dropped: the only
// times the store may have changed other than through the batch.
func (c *partitionCore) load() error {
	c.cache.ClearCache()
	v, err := c.store.Get(state.MetaKey(c.p, clockKeyName))
	if err != nil {
		return err
	}
	c.clock, c.clockDirty = math.MinInt64, false
	if len(v) == 8 {
		c.clock = int64(binary.BigEndian.Uint64(v))
	}
	c.timerq = nil
	return nil
}

// drop discards every uncommitted write and output.
func (c *partitionCore) drop() error {
	c.batch.Discard()
	c.upserts, c.internal = c.upserts[:0], c.internal[:0]
	c.timersFired, c.timerDelta = 0, 0
	clear(c.upsertAt)
	clear(c.bufs)
	return c.load()
}

// setClock moves the clock to ts if it is later. The move is written to
// state once per transaction, by flush (writeClock): the clock changes on
// almost every event, and one write per event cost as much as a small
// operator's.
func (c *partitionCore) setClock(ts int64) error {
	if ts <= c.clock {
		return nil
	}
	c.clock = ts
	c.clockDirty = true
	return nil
}

// writeClock writes the clock if setClock moved it in this transaction.
func (c *partitionCore) writeClock() error {
	if !c.clockDirty {
		return nil
	}
	c.clockDirty = false
	return c.batch.Set(state.MetaKey(c.p, clockKeyName), binary.BigEndian.AppendUint64(nil, uint64(c.clock)))
}

// processEvent advances the clock, fires due timers while more (if not
// nil) allows, applies profile updates and hands ev to every operator that
// listens for it, then drains the internal events they emitted. It returns
// false, having handed ev to no operator, if more stopped the firing before
// every timer due by the clock fired; the clock has then moved as for ev,
// so the firings that follow, in a later call with ev, see what they would
// have seen without the stop.
func (c *partitionCore) processEvent(ev *Event, more func() bool) (bool, error) {
	if done, err := c.advanceWhile(c.eventTime(ev), more); !done || err != nil {
		return false, err
	}
	if err := c.dispatch(ev); err != nil {
		return false, err
	}
	return true, c.drainInternal()
}

// eventTime is the time ev moves the clock to, if later: its ts, at most
// wallLimit.
func (c *partitionCore) eventTime(ev *Event) int64 {
	if c.wallLimit != nil {
		return min(ev.TS, c.wallLimit())
	}
	return ev.TS
}

// advance moves the clock to ts (if later) and fires every timer due at or
// before the clock, in due order.
func (c *partitionCore) advance(ts int64) error {
	_, err := c.advanceWhile(ts, nil)
	return err
}

// advanceWhile is advance firing while more (if not nil) allows; it
// reports whether every timer due by the clock fired.
func (c *partitionCore) advanceWhile(ts int64, more func() bool) (bool, error) {
	if err := c.setClock(ts); err != nil {
		return false, err
	}
	_, done, err := c.fireDueWhile(c.clock, more)
	return done, err
}

func (c *partitionCore) dispatch(ev *Event) error {
	if ev.Name == EventProfileSet || ev.Name == EventProfileUnset {
		if err := c.updateProfile(ev); err != nil {
			return err
		}
	}
	ops, ok := c.byEvent[ev.Name]
	if !ok {
		ops = c.always
	}
	for _, op := range ops {
		ctx := &Context{core: c, op: op.Name(), user: ev.UserID, now: ev.TS}
		if err := op.OnEvent(ctx, ev); err != nil {
			return fmt.Errorf("operator %s on event %s: %w", op.Name(), ev.Cause(), err)
		}
	}
	return nil
}

func (c *partitionCore) drainInternal() error {
	for i := 0; len(c.internal) > 0; i++ {
		if i >= maxInternalEvents {
			return fmt.Errorf("more than %d internal events from one input: operators loop", maxInternalEvents)
		}
		ev := c.internal[0]
		c.internal = c.internal[1:]
		if err := c.dispatch(&ev); err != nil {
			return err
		}
	}
	c.internal = c.internal[:0]
	return nil
}

func (c *partitionCore) profile(user string) (map[string]any, error) {
	v, err := c.batch.Get(state.UserKey(c.p, user, ProfileOperator, nil))
	if err != nil || v == nil {
		return map[string]any{}, err
	}
	p := map[string]any{}
	if err := state.DecodeValue(v, &p); err != nil {
		return nil, fmt.Errorf("reading profile of %s: %w", user, err)
	}
	return p, nil
}

func (c *partitionCore) updateProfile(ev *Event) error {
	p, err := c.profile(ev.UserID)
	if err != nil {
		return err
	}
	for k, v := range ev.Props {
		if ev.Name == EventProfileSet {
			p[k] = v
		} else {
			delete(p, k)
		}
	}
	b, err := state.EncodeValue(p)
	if err != nil {
		return err
	}
	return c.batch.Set(state.UserKey(c.p, ev.UserID, ProfileOperator, nil), b)
}

// emit produces out for a call at event time now, unless shadow mode
// holds it back (Config.ShadowUntil).
func (c *partitionCore) emit(out Output, now int64) {
	if now < c.shadowUntil {
		if c.shadowed != nil {
			c.shadowed(out)
		}
		return
	}
	c.sink(out)
}

func (c *partitionCore) upsert(out Output) {
	k := out.Topic + "\x00" + string(out.Key)
	if i, ok := c.upsertAt[k]; ok {
		c.upserts[i] = out
		return
	}
	c.upsertAt[k] = len(c.upserts)
	c.upserts = append(c.upserts, out)
}

func (c *partitionCore) txnBuffer(op string, create func() any) any {
	if b, ok := c.bufs[op]; ok {
		return b
	}
	if _, ok := c.byName[op].(Flusher); !ok {
		panic(fmt.Sprintf("engine: operator %s uses TxnBuffer but does not implement Flusher", op))
	}
	b := create()
	c.bufs[op] = b
	return b
}

// pending reports whether the transaction has anything to write or produce.
func (c *partitionCore) pending() bool {
	return c.clockDirty || !c.batch.Empty() || len(c.upserts) > 0 || len(c.bufs) > 0
}

// flush writes the clock if it moved, hands every operator's transaction
// buffer to its Flush, then emits
// the coalesced upserts of this transaction. The changelog records are the
// caller's: they must follow, as Flush writes state.
func (c *partitionCore) flush() error {
	if err := c.writeClock(); err != nil {
		return err
	}
	if len(c.bufs) > 0 {
		for _, op := range c.ops {
			b, ok := c.bufs[op.Name()]
			if !ok {
				continue
			}
			ctx := &Context{core: c, op: op.Name(), now: c.clock}
			if err := op.(Flusher).Flush(ctx, b); err != nil {
				return fmt.Errorf("operator %s flushing its transaction buffer: %w", op.Name(), err)
			}
		}
		clear(c.bufs)
	}
	for _, out := range c.upserts {
		c.sink(out)
	}
	c.upserts = c.upserts[:0]
	clear(c.upsertAt)
	return nil
}
