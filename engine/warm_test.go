package engine_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// TestWarmRestartReplaysNothing restarts an instance on its own state
// directory twice. The second life only gets events for partition 0, so the
// other partitions are idle in all of its transactions; the third life must
// still find every marker at the changelog's end and restore nothing. (An
// idle partition's commit once wrote a zero changelog offset into its
// marker, so every restart replayed its whole changelog.)
func TestWarmRestartReplaysNothing(t *testing.T) {
	addrs := newBroker(t)
	dir := t.TempDir()
	first := genEvents("first", 60, 1200, 1_700_000_000_000)
	kafkatest.ProduceEvents(t, addrs, input, first)
	a := startInstance(t, addrs, "a", dir, nil)
	kafkatest.WaitCounts(t, addrs, countsOut, len(first))
	a.stop(t)

	var second []kafkatest.Event
	for _, ev := range genEvents("second", 60, 1200, 1_700_000_100_000) {
		if engine.KeyPartition([]byte(ev.UserID), 6) == 0 {
			second = append(second, ev)
		}
	}
	kafkatest.ProduceEvents(t, addrs, input, second)
	b := startInstance(t, addrs, "a", dir, nil)
	all := append(first, second...)
	kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
	b.stop(t)

	reg := prometheus.NewRegistry()
	third := genEvents("third", 60, 600, 1_700_000_200_000)
	kafkatest.ProduceEvents(t, addrs, input, third)
	startInstance(t, addrs, "a", dir, func(c *engine.Config) { c.Registerer = reg })
	all = append(all, third...)
	kafkatest.CheckCounts(t, all, kafkatest.WaitCounts(t, addrs, countsOut, len(all)))
	if n := counterValue(t, reg, "cairn_restore_records_total"); n != 0 {
		t.Fatalf("a restart on a warm state directory replayed %v changelog records, want 0", n)
	}
}
