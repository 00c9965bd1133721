package segment

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
)

// benchDefs returns 20 segments: 8 windowed event rules, 4 all-time event
// rules, 3 profile rules, 1 list and 4 composites.
func benchDefs() string {
	names := []string{"app_open", "view_item", "add_to_cart", "purchase"}
	var docs []string
	seg := func(id, rule string) { docs = append(docs, "kind: segment\nid: "+id+"\nrule: "+rule+"\n") }
	for i := range 8 {
		seg(fmt.Sprintf("w%d", i), fmt.Sprintf("{event: {name: %s, count: '>= %d', within: %dd}}", names[i%4], 1+i%3, 1+i))
	}
	for i := range 4 {
		seg(fmt.Sprintf("a%d", i), fmt.Sprintf("{event: {name: %s, where: 'event.props.amount > %d', count: %d}}", names[i], 10*i, 2+i))
	}
	for i, tier := range []string{"gold", "silver", "bronze"} {
		seg(fmt.Sprintf("p%d", i), fmt.Sprintf("{profile: 'profile.tier == \"%s\"'}", tier))
	}
	seg("l0", "{list: true}")
	seg("c0", "{all: [{segment: p0}, {not: {segment: w3}}]}")
	seg("c1", "{any: [{segment: l0}, {segment: w0}]}")
	seg("c2", "{all: [{segment: c1}, {segment: a1}]}")
	seg("c3", "{all: [{segment: p1}, {segment: w5}, {not: {segment: c2}}]}")
	return strings.Join(docs, "---\n")
}

func benchEvents(n, users int) []engine.Event {
	rng := rand.New(rand.NewPCG(5, 6))
	names := []string{"app_open", "app_open", "view_item", "view_item", "add_to_cart", "purchase", "$profile_set", "$segment_add"}
	ts := int64(1_700_000_000_000)
	evs := make([]engine.Event, n)
	for i := range evs {
		ts += rng.Int64N(60_000)
		ev := engine.Event{UserID: fmt.Sprintf("user-%d", rng.IntN(users)), Name: names[rng.IntN(len(names))], TS: ts}
		switch ev.Name {
		case "$profile_set":
			ev.Props = map[string]any{"tier": []string{"gold", "silver", "bronze"}[rng.IntN(3)]}
		case "$segment_add":
			ev.Props = map[string]any{"segment": "l0"}
		default:
			ev.Props = map[string]any{"amount": rng.IntN(100)}
		}
		evs[i] = ev
	}
	return evs
}

// timed wraps the operator to measure the time spent in it, apart from the
// harness's per-event Pebble commit (engine.Local commits every event, and
// that commit's WAL write dominates the wall time).
type timed struct {
	*Operator
	spent time.Duration
}

func (t *timed) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	start := time.Now()
	err := t.Operator.OnEvent(ctx, ev)
	t.spent += time.Since(start)
	return err
}

func (t *timed) OnTimer(ctx *engine.Context, tm *engine.Timer) error {
	start := time.Now()
	err := t.Operator.OnTimer(ctx, tm)
	t.spent += time.Since(start)
	return err
}

// BenchmarkEvents runs events over 10,000 users through engine.Local with
// 20 segments. ns/op and events/s include Local's commit of every event;
// op-events/s counts only the time spent in the operator (its state reads
// and writes go to the Pebble indexed batch, as in production).
func BenchmarkEvents(b *testing.B) {
	op := &timed{Operator: mustNew(b, benchDefs())}
	counter := &recorder{}
	l, err := engine.NewLocal(0, op, counter)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	evs := benchEvents(1<<16, 10_000)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		ev.TS += int64(i/len(evs)) * int64(len(evs)) * 60_000
		if _, err := l.Process(ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(b.N)/op.spent.Seconds(), "op-events/s")
	b.ReportMetric(float64(len(counter.got))/float64(b.N), "changes/event")
	b.StopTimer()
	b.ReportMetric(stateBytesPerUser(b, l, 10_000), "state-B/user")
}

// stateBytesPerUser sums the operator's keys and values, shared and per
// user, over the users that have any.
func stateBytesPerUser(b *testing.B, l *engine.Local, users int) float64 {
	total, n := 0, 0
	sum := func(k, v []byte) error { total += len(k) + len(v); return nil }
	if err := l.ScanShared(OperatorName, sum); err != nil {
		b.Fatal(err)
	}
	for u := range users {
		before := total
		if err := l.ScanUser(fmt.Sprintf("user-%d", u), OperatorName, sum); err != nil {
			b.Fatal(err)
		}
		if total > before {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return float64(total) / float64(n)
}

// BenchmarkChunkUpdate measures one membership change of a chunk: decode,
// add or remove one member, encode. B-written/change is the size of the
// value the change rewrites.
func BenchmarkChunkUpdate(b *testing.B) {
	for _, n := range []int{100, arrayMax, 30000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			c, _ := randomChunk(rand.New(rand.NewPCG(7, 8)), n)
			v := c.encode()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				// Toggle one member: the chunk keeps n or n±1 members.
				out, changed, err := updateChunk(v, c.hi, 12345, i%2 == 0)
				if err != nil {
					b.Fatal(err)
				}
				if changed {
					v = out
				}
			}
			b.ReportMetric(float64(len(v)), "B-written/change")
		})
	}
}
