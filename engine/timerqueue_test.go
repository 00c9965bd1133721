package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// qk returns the timer key of a test timer on partition 0.
func qk(due int64, op, user, id string) string {
	return string(state.TimerKey(0, due, op, user, id))
}

// qident returns the identity (operator, user, id) part of a timer key.
func qident(op, user, id string) []byte {
	return state.TimerKey(0, 0, op, user, id)[state.TimerIdentityAt:]
}

type qop struct {
	push   string // a timer key to push
	remove []byte // an identity to remove
	ok     bool   // whether remove finds it
}

func TestTimerQueueOrder(t *testing.T) {
	long := func(n int) string { return strings.Repeat("u", n) }
	tests := []struct {
		name string
		ops  []qop
		want []string // keys in pop order
	}{
		{name: "by due time",
			ops:  []qop{{push: qk(30, "j", "a", "t")}, {push: qk(10, "j", "a", "u")}, {push: qk(20, "j", "b", "t")}},
			want: []string{qk(10, "j", "a", "u"), qk(20, "j", "b", "t"), qk(30, "j", "a", "t")}},
		{name: "negative and extreme due times",
			ops: []qop{{push: qk(math.MaxInt64, "j", "a", "t")}, {push: qk(5, "j", "b", "t")},
				{push: qk(-5, "j", "c", "t")}, {push: qk(math.MinInt64, "j", "d", "t")}},
			want: []string{qk(math.MinInt64, "j", "d", "t"), qk(-5, "j", "c", "t"), qk(5, "j", "b", "t"), qk(math.MaxInt64, "j", "a", "t")}},
		{name: "same due: operator, then user, then id",
			ops: []qop{{push: qk(7, "k", "a", "a")}, {push: qk(7, "j", "b", "b")}, {push: qk(7, "j", "b", "a")},
				{push: qk(7, "j", "a", "z")}},
			want: []string{qk(7, "j", "a", "z"), qk(7, "j", "b", "a"), qk(7, "j", "b", "b"), qk(7, "k", "a", "a")}},
		{name: "same due: the length prefix first, so b before aa",
			ops:  []qop{{push: qk(7, "j", "aa", "t")}, {push: qk(7, "j", "b", "t")}, {push: qk(7, "j", "", "t")}},
			want: []string{qk(7, "j", "", "t"), qk(7, "j", "b", "t"), qk(7, "j", "aa", "t")}},
		{name: "same due: two-byte length prefixes in byte order, not length order",
			ops: []qop{{push: qk(7, "j", long(200), "t")}, {push: qk(7, "j", long(256), "t")}, {push: qk(7, "j", long(128), "t")},
				{push: qk(7, "j", long(127), "t")}, {push: qk(7, "j", long(1), "t")}},
			// uvarint 1=01, 127=7f, 128=80 01, 256=80 02, 200=c8 01
			want: []string{qk(7, "j", long(1), "t"), qk(7, "j", long(127), "t"), qk(7, "j", long(128), "t"),
				qk(7, "j", long(256), "t"), qk(7, "j", long(200), "t")}},
		{name: "remove the root, a leaf and a missing timer",
			ops: []qop{{push: qk(1, "j", "a", "t")}, {push: qk(2, "j", "b", "t")}, {push: qk(3, "j", "c", "t")}, {push: qk(4, "j", "d", "t")},
				{remove: qident("j", "a", "t"), ok: true}, {remove: qident("j", "d", "t"), ok: true},
				{remove: qident("j", "e", "t")}, {remove: qident("k", "b", "t")}},
			want: []string{qk(2, "j", "b", "t"), qk(3, "j", "c", "t")}},
		{name: "reschedule: remove and push again",
			ops: []qop{{push: qk(1, "j", "a", "t")}, {push: qk(2, "j", "b", "t")},
				{remove: qident("j", "a", "t"), ok: true}, {push: qk(3, "j", "a", "t")},
				{remove: qident("j", "b", "t"), ok: true}, {push: qk(0, "j", "b", "t")}},
			want: []string{qk(0, "j", "b", "t"), qk(3, "j", "a", "t")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newTimerQueue()
			for _, o := range tt.ops {
				if o.push != "" {
					q.Push(o.push)
					continue
				}
				if _, ok := q.Remove(o.remove); ok != o.ok {
					t.Fatalf("Remove(%x) found = %v, want %v", o.remove, ok, o.ok)
				}
			}
			if q.Len() != len(tt.want) {
				t.Fatalf("Len = %d, want %d", q.Len(), len(tt.want))
			}
			for i, w := range tt.want {
				if due := q.MinDue(); due != state.TimerKeyDue(w) {
					t.Fatalf("pop %d: MinDue = %d, want %d", i, due, state.TimerKeyDue(w))
				}
				if got, ok := q.PopMin(); !ok || got != w {
					t.Fatalf("pop %d = %x, %v; want %x", i, got, ok, w)
				}
			}
			if _, ok := q.PopMin(); ok || q.MinDue() != math.MaxInt64 || q.Len() != 0 {
				t.Fatalf("queue not empty after the expected pops")
			}
		})
	}
}

// TestTimerQueueMatchesSortedModel drives the queue through random pushes,
// removes and pops and checks each pop against a sorted slice of keys.
func TestTimerQueueMatchesSortedModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	q := newTimerQueue()
	model := map[string]string{} // identity -> key
	for step := 0; step < 20000; step++ {
		op, user := []string{"j", "k"}[rng.IntN(2)], strings.Repeat("u", rng.IntN(140))
		ident := string(qident(op, user, "t"))
		switch r := rng.IntN(10); {
		case r < 5:
			if old, ok := model[ident]; ok {
				if got, _ := q.Remove([]byte(ident)); got != old {
					t.Fatalf("step %d: Remove = %x, want %x", step, got, old)
				}
			}
			model[ident] = qk(rng.Int64N(100)-50, op, user, "t")
			q.Push(model[ident])
		case r < 7:
			got, ok := q.Remove([]byte(ident))
			if want, in := model[ident]; ok != in || got != want {
				t.Fatalf("step %d: Remove = %x, %v; want %x, %v", step, got, ok, want, in)
			}
			delete(model, ident)
		default:
			keys := slices.Sorted(func(yield func(string) bool) {
				for _, k := range model {
					if !yield(k) {
						return
					}
				}
			})
			got, ok := q.PopMin()
			if len(keys) == 0 {
				if ok {
					t.Fatalf("step %d: PopMin of an empty queue gave %x", step, got)
				}
				continue
			}
			if got != keys[0] {
				t.Fatalf("step %d: PopMin = %x, want %x", step, got, keys[0])
			}
			delete(model, got[state.TimerIdentityAt:])
		}
		if q.Len() != len(model) {
			t.Fatalf("step %d: Len = %d, want %d", step, q.Len(), len(model))
		}
	}
}

// BenchmarkTimerQueuePush pushes journey-like timers (user ids of 12
// bytes, operator "journey", id "j/welcome") and reports the heap bytes
// each costs, keys included.
func BenchmarkTimerQueuePush(b *testing.B) {
	b.ReportAllocs()
	const n = 100_000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = qk(int64(i*7919%n), "journey", fmt.Sprintf("user-%07d", i), "j/welcome")
	}
	var before, after runtime.MemStats
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&before)
		q := newTimerQueue()
		for _, k := range keys {
			q.Push(string([]byte(k))) // a fresh copy, as setTimer makes
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/timer")
		b.ReportMetric(float64(len(keys[0])), "key-B")
		runtime.KeepAlive(q)
	}
}

// BenchmarkTimerQueueLoad measures rebuilding the queue of a partition
// with 100,000 committed timers, as the first timer operation after an
// assignment or an abort does, and reports the cost per timer.
func BenchmarkTimerQueueLoad(b *testing.B) {
	b.ReportAllocs()
	const n = 100_000
	l, err := NewLocal(0)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c := l.core
	for i := 0; i < n; i++ {
		if err := c.setTimer("journey", fmt.Sprintf("user-%07d", i), "j/welcome", int64(i*7919%n), []byte("payload")); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.batch.Commit(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c.timerq = nil
		q, err := c.timers()
		if err != nil {
			b.Fatal(err)
		}
		if q.Len() != n {
			b.Fatalf("loaded %d timers, want %d", q.Len(), n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/timer")
}
