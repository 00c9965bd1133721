package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// scripted is an operator whose OnTimer is the test's.
type scripted struct {
	name    string
	onTimer func(ctx *Context, t *Timer) error
}

func (s scripted) Name() string                         { return s.name }
func (s scripted) Events() []string                     { return []string{"-"} }
func (s scripted) OnEvent(*Context, *Event) error       { return nil }
func (s scripted) OnTimer(ctx *Context, t *Timer) error { return s.onTimer(ctx, t) }

// modelTimer is a timer of the brute-force model, by its key.
type modelTimer struct {
	op, user, id string
	due          int64
	payload      string
}

// timerModel is the brute-force reference: every pending timer by its
// identity; the next timer is found by sorting all their keys, the order
// of the old store scan.
type timerModel map[string]modelTimer

func (m timerModel) set(op, user, id string, due int64, payload string) {
	m[string(qident(op, user, id))] = modelTimer{op, user, id, due, payload}
}

func (m timerModel) sorted() []modelTimer {
	return slices.SortedFunc(maps.Values(m), func(a, b modelTimer) int {
		return bytes.Compare(state.TimerKey(0, a.due, a.op, a.user, a.id), state.TimerKey(0, b.due, b.op, b.user, b.id))
	})
}

// timerDiff drives a partition core and the model through the same random
// timer operations.
type timerDiff struct {
	t         *testing.T
	rng       *rand.Rand
	store     state.Store
	ops       []Operator
	c         *partitionCore
	model     timerModel
	committed timerModel
	upTo      int64 // of the fireDueWhile running, for the firing checks
	fired     int
	step      int
}

var (
	diffOps   = []string{"a", strings.Repeat("o", 130)}
	diffUsers = []string{"", "u0", "u1", "u2", "uu", "v", strings.Repeat("x", 128), strings.Repeat("y", 300)}
	diffIDs   = []string{"t", "t2", strings.Repeat("i", 127)}
)

func newTimerDiff(t *testing.T, seed uint64) *timerDiff {
	t.Helper()
	d := &timerDiff{t: t, rng: rand.New(rand.NewPCG(seed, seed)), model: timerModel{}, committed: timerModel{}}
	for _, name := range diffOps {
		d.ops = append(d.ops, scripted{name: name, onTimer: d.onTimer})
	}
	var err error
	if d.store, err = state.OpenPebble("", state.Options{InMemory: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.store.Close() })
	d.newCore()
	return d
}

// newCore starts a fresh core on the committed store, as an assignment does.
func (d *timerDiff) newCore() {
	if d.c != nil {
		d.c.batch.Close()
	}
	d.c = newPartitionCore(0, d.store, d.ops, DefaultStateCacheBytes, slog.New(slog.NewTextHandler(io.Discard, nil)))
	d.c.sink = func(Output) {}
	if err := d.c.load(); err != nil {
		d.t.Fatal(err)
	}
	d.model = maps.Clone(d.committed)
}

func (d *timerDiff) pick(s []string) string { return s[d.rng.IntN(len(s))] }

// set sets a random timer due around base, often one that exists.
func (d *timerDiff) set(base int64) {
	op, user, id := d.pick(diffOps), d.pick(diffUsers), d.pick(diffIDs)
	due, payload := base+d.rng.Int64N(60)-10, fmt.Sprintf("p%d", d.step)
	if err := d.c.setTimer(op, user, id, due, []byte(payload)); err != nil {
		d.t.Fatal(err)
	}
	d.model.set(op, user, id, due, payload)
	d.step++
}

func (d *timerDiff) cancel() {
	op, user, id := d.pick(diffOps), d.pick(diffUsers), d.pick(diffIDs)
	if err := d.c.cancelTimer(op, user, id); err != nil {
		d.t.Fatal(err)
	}
	delete(d.model, string(qident(op, user, id)))
}

// onTimer checks a firing against the model's earliest timer, then sets
// or cancels timers as an operator may, some of them due at once.
func (d *timerDiff) onTimer(ctx *Context, tm *Timer) error {
	d.t.Helper()
	want := d.model.sorted()
	got := modelTimer{ctx.op, ctx.UserID(), tm.ID, tm.Due, string(tm.Payload)}
	if len(want) == 0 || want[0] != got || got.due > d.upTo {
		d.t.Fatalf("step %d: fired %+v, want the model's first of %d: %+v (up to %d)", d.step, got, len(want), want[:min(1, len(want))], d.upTo)
	}
	delete(d.model, string(qident(got.op, got.user, got.id)))
	d.fired++
	switch r := d.rng.IntN(10); {
	case r < 3:
		d.set(tm.Due)
	case r < 4:
		d.cancel()
	}
	return nil
}

// fire runs fireDueWhile up to a random time with a random budget and
// checks that it fired exactly what was due, budget permitting.
func (d *timerDiff) fire(base int64) {
	d.upTo, d.fired = base+d.rng.Int64N(40), 0
	budget := []int{-1, -1, 1, 3}[d.rng.IntN(4)]
	last, done, err := d.c.fireDueWhile(d.upTo, firings(budget))
	if err != nil {
		d.t.Fatal(err)
	}
	sorted := d.model.sorted()
	due := len(sorted) > 0 && sorted[0].due <= d.upTo
	if done == due || (!done && d.fired != budget) || (d.fired > 0 && last > d.upTo) {
		d.t.Fatalf("step %d: fireDueWhile(%d, %d) = %d, %v after %d firings; a timer still due: %v",
			d.step, d.upTo, budget, last, done, d.fired, due)
	}
}

// check compares the store and batch (scanned as the old nextTimer did),
// the timer index and the queue with the model.
func (d *timerDiff) check() {
	d.t.Helper()
	var keys, vals []string
	pre := state.TimerPrefix(0)
	if err := d.c.batch.Scan(pre, state.PrefixEnd(pre), func(k, v []byte) error {
		keys, vals = append(keys, string(k)), append(vals, string(v))
		return nil
	}); err != nil {
		d.t.Fatal(err)
	}
	want := d.model.sorted()
	if n, err := d.c.pendingTimers(); err != nil || n != len(want) || len(keys) != len(want) {
		d.t.Fatalf("step %d: %d timers in the queue, %d in the store, want %d (%v)", d.step, n, len(keys), len(want), err)
	}
	for i, w := range want {
		if keys[i] != qk(w.due, w.op, w.user, w.id) || vals[i] != string(state.ValueVersion)+w.payload {
			d.t.Fatalf("step %d: store timer %d = %x %q, want %+v", d.step, i, keys[i], vals[i], w)
		}
		idx, err := d.c.batch.Get(state.TimerIndexKey(0, w.user, w.op, w.id))
		if err != nil || len(idx) != 8 || int64(binary.BigEndian.Uint64(idx)) != w.due {
			d.t.Fatalf("step %d: index of %+v = %x, %v", d.step, w, idx, err)
		}
	}
	ipre := append(state.PartitionPrefix(0), byte(state.TagTimerIdx))
	n := 0
	_ = d.c.batch.Scan(ipre, state.PrefixEnd(ipre), func(_, _ []byte) error { n++; return nil })
	if n != len(want) {
		d.t.Fatalf("step %d: %d timer index keys, want %d", d.step, n, len(want))
	}
	if due, _ := d.c.nextDue(); len(want) > 0 && due != want[0].due {
		d.t.Fatalf("step %d: nextDue = %d, want %d", d.step, due, want[0].due)
	}
}

// TestTimerQueueMatchesStoreScan drives a partition core through random
// set, cancel, reschedule, fire (with firings that set and cancel timers),
// commit, abort and reload sequences, and checks every firing's order and
// payload against a brute-force model, and the queue against a scan of the
// store, as the store-scanning implementation read it.
func TestTimerQueueMatchesStoreScan(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			d := newTimerDiff(t, seed)
			base := int64(-100)
			for i := 0; i < 400; i++ {
				switch r := d.rng.IntN(100); {
				case r < 40:
					d.set(base)
				case r < 50:
					d.cancel()
				case r < 75:
					d.fire(base)
					base += d.rng.Int64N(20)
				case r < 88:
					if err := d.c.batch.Commit(); err != nil {
						t.Fatal(err)
					}
					d.committed = maps.Clone(d.model)
				case r < 94:
					if err := d.c.drop(); err != nil {
						t.Fatal(err)
					}
					d.model = maps.Clone(d.committed)
				default:
					d.newCore()
				}
				d.step++
				if d.rng.IntN(4) == 0 {
					d.check()
				}
			}
			d.check()
		})
	}
}
