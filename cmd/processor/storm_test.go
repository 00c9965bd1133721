package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// stormPlan is how many membership changes TestRebalanceStorm makes and the
// range of the pause before each: a short storm in make test, and with
// CAIRN_CHAOS_CYCLES set (make chaos) the pace, a change every
// 5–30 s, CAIRN_STORM_CHANGES times (default 30).
func stormPlan() (changes int, lo, hi time.Duration) {
	if os.Getenv("CAIRN_CHAOS_CYCLES") == "" {
		return 8, time.Second, 3 * time.Second
	}
	changes = 30
	if n, err := strconv.Atoi(os.Getenv("CAIRN_STORM_CHANGES")); err == nil && n > 0 {
		changes = n
	}
	return changes, 5 * time.Second, 30 * time.Second
}

// TestRebalanceStorm keeps between one and three instances in the group
// while events keep arriving, and at random moments starts one or stops one
// with SIGTERM, so that partitions move all the time (and state follows
// them through the changelog). The committed outputs must be exactly one per
// input event, in order per user, and every instance must exit 0.
func TestRebalanceStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes for half a minute")
	}
	addrs, defs := counterSetup(t)
	changes, lo, hi := stormPlan()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d changes, pauses %s–%s", seed, changes, lo, hi)
	rng := rand.New(rand.NewPCG(seed, 7))
	every := 150 * time.Millisecond
	evs := feed(t, addrs, 100, int(time.Duration(changes)*(lo+hi)/2/every)+1, every)

	live := map[string]*child{}
	start := func(id string) {
		live[id] = startChild(t, "run", "--brokers", addrs[0], "--app-id", "storm", "--definitions", defs,
			"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", id,
			"--commit-interval", "50ms", "--session-timeout", "3s", "--rebalance-timeout", "6s",
			"--transaction-timeout", "10s", "--log-level", "info")
	}
	stop := func(id string) {
		// A SIGTERM before main installs its handler kills the process
		// with the signal (exit -1): on a loaded machine a just-started
		// child can be that slow.
		live[id].waitLog(t, "cairn instance starting")
		if code := live[id].term(t); code != 0 {
			t.Errorf("instance %s exited %d after SIGTERM, want 0", id, code)
		}
		delete(live, id)
	}
	start("s-0")
	joins, leaves := 1, 0
	for i := 1; i <= changes; i++ {
		time.Sleep(lo + time.Duration(rng.Int64N(int64(hi-lo))))
		if len(live) == 1 || len(live) < 3 && rng.IntN(2) == 0 {
			start(fmt.Sprintf("s-%d", i))
			joins++
			continue
		}
		ids := make([]string, 0, len(live))
		for id := range live {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		stop(ids[rng.IntN(len(ids))])
		leaves++
	}
	all := evs()
	began := time.Now()
	outs := kafkatest.WaitCounts(t, addrs, "counts", len(all))
	converged := time.Since(began)
	for id := range live {
		stop(id)
	}
	reportCounts(t, addrs, kafkatest.ChaosRow{Scenario: fmt.Sprintf("rebalance storm (join or leave every %s–%s)", lo, hi),
		Cycles: changes, Recovery: converged, Seed: seed, Restarts: recoveries(t)}, all, outs)
	t.Logf("%d joins, %d leaves, %d events, %d outputs, exact", joins, leaves, len(all), len(outs))
}
