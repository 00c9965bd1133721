package engine_test

import (
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// TestShadowModeBuildsStateWithoutResendingHistory runs the counting
// operator with ShadowUntil between two halves of the log: the first half
// must produce no output but still be counted, so the first output of every
// user after the cut carries the user's full count (its n continues from
// the shadowed events), and every event after the cut has its output.
func TestShadowModeBuildsStateWithoutResendingHistory(t *testing.T) {
	addrs := newBroker(t)
	const ts0 = 1_700_000_000_000
	evs := genEvents("s", 20, 1000, ts0) // ts0 .. ts0+999 ms
	cut := time.UnixMilli(ts0 + 600)
	kafkatest.ProduceEvents(t, addrs, input, evs)
	startInstance(t, addrs, "shadow", t.TempDir(), func(c *engine.Config) { c.ShadowUntil = cut })

	var after []kafkatest.Event
	for _, ev := range evs {
		if ev.TS >= cut.UnixMilli() {
			after = append(after, ev)
		}
	}
	outs := kafkatest.WaitCounts(t, addrs, countsOut, len(after))
	// The tally over all events must find exactly the shadowed ones lost,
	// and nothing duplicated or out of order.
	tally := kafkatest.TallyCounts(evs, outs)
	if tally.Outputs != len(after) || tally.Lost != len(evs)-len(after) || tally.Duplicated != 0 || tally.OutOfOrder != 0 {
		t.Fatalf("shadow run: %+v; want %d outputs (events at or after the cut) and %d held back", tally, len(after), len(evs)-len(after))
	}
	for _, o := range outs {
		if o.TS < cut.UnixMilli() {
			t.Errorf("output for an event at %d, before the cut %d: %+v", o.TS, cut.UnixMilli(), o)
		}
	}
}
