package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/failpoint"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// bigBroadcastDefs enters every member of gold at noon UTC, once a day.
const bigBroadcastDefs = `kind: segment
id: gold
rule: {profile: 'profile.tier == "gold"'}
---
kind: journey
id: noon
entry:
  schedule: {cron: "0 12 * * *", timezone: UTC, segment: gold}
  reentry: after_exit
nodes:
  ping: {action: {channel: push, template: noon}}
`

// bigBroadcastPlan is the segment size, the kills and the firing window of
// TestBigBroadcastSurvivesKills: 5,000 members, 3 kills and a 10ms window
// (shorter than one 1,000-member slice, so that the clock events wait in
// the backlog while the kills land) in make test; CAIRN_BIG_BROADCAST
// members (make chaos: 1,000,000), 5 kills and the default window
// otherwise.
func bigBroadcastPlan() (members, kills int, window string) {
	if n, err := strconv.Atoi(os.Getenv("CAIRN_BIG_BROADCAST")); err == nil && n > 0 {
		return n, 5, "0s"
	}
	return 5000, 3, "10ms"
}

// deferringLog is what an instance logs when a partition's input starts
// waiting in its backlog (engine/backlog.go).
const deferringLog = "deferring the partition's input"

// childLogsWith returns how many of the test's processors logged s.
func childLogsWith(t *testing.T, s string) int {
	childrenOf.mu.Lock()
	cs := childrenOf.m[t.Name()]
	childrenOf.mu.Unlock()
	n := 0
	for _, c := range cs {
		if b, _ := os.ReadFile(c.log.Name()); strings.Contains(string(b), s) {
			n++
		}
	}
	return n
}

// TestBigBroadcastSurvivesKills builds a segment of many members, lets a
// scheduled broadcast enter them all, and kills the processor in the
// middle of the broadcast again and again (at the mid-broadcast failpoint,
// at a random member; a cycle whose point is not reached within the time
// limit is killed by the test instead). Each restart resumes from the
// broadcast's committed cursor. In the end every member must have exactly
// one action for the tick, with no action id twice. The pass takes longer
// than the firing window, so the events behind it wait in their
// partitions' backlogs meanwhile, through the kills.
func TestBigBroadcastSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	members, kills, window := bigBroadcastPlan()
	b := kafkatest.Start(t, broker.Options{})
	addrs := b.Addrs()
	kafkatest.CreateTopic(t, addrs, "events", 4, nil)
	defs := t.TempDir()
	if err := os.WriteFile(filepath.Join(defs, "big.yaml"), []byte(bigBroadcastDefs), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 2, 11, 0, 0, 0, time.UTC).UnixMilli()
	tick := t0 + 3_600_000 // noon
	evs := make([]kafkatest.Event, 0, members+4)
	for u := 0; u < members; u++ {
		evs = append(evs, kafkatest.Event{UserID: fmt.Sprintf("b-%d", u), Event: "$profile_set", TS: t0,
			Props: map[string]any{"tier": "gold"}, EventID: fmt.Sprintf("p-%d", u)})
	}
	// One later event per partition moves every partition's clock past noon.
	seen := map[int32]bool{}
	for u := 0; len(seen) < 4; u++ {
		user := fmt.Sprintf("clock-%d", u)
		if p := engine.KeyPartition([]byte(user), 4); !seen[p] {
			seen[p] = true
			evs = append(evs, kafkatest.Event{UserID: user, Event: "view_item", TS: tick + 60_000, EventID: "c-" + user})
		}
	}
	for lo := 0; lo < len(evs); lo += 100_000 {
		kafkatest.ProduceEvents(t, addrs, "events", evs[lo:min(lo+100_000, len(evs))])
	}
	args := []string{"run", "--brokers", addrs[0], "--app-id", "big", "--definitions", defs,
		"--state-dir", t.TempDir(), "--http", "127.0.0.1:0", "--instance-id", "big", "--idle-advance=false",
		"--session-timeout", "3s", "--rebalance-timeout", "6s", "--transaction-timeout", "20s", "--firing-window", window, "--log-level", "info"}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 13))
	atPoint, limit := 0, 60*time.Second+time.Duration(members/5_000)*time.Second
	for i := 0; i < kills; i++ {
		n := 1 + rng.IntN(max(1, members/(2*kills)))
		c := startChildEnv(t, []string{fmt.Sprintf("%s=%s@%d", failpoint.EnvVar, failpoint.MidBroadcast, n)}, args...)
		exited := c.watch()
		select {
		case <-exited:
			ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
				t.Fatalf("cycle %d: processor ended with %v (log %s)", i, c.cmd.ProcessState, c.log.Name())
			}
			atPoint++
		case <-time.After(limit): // the point is beyond what is left: kill it anyway
			_ = c.cmd.Process.Signal(syscall.SIGKILL)
			<-exited
		}
	}
	kafkatest.WaitGroupEmpty(t, addrs, "big")
	c := startChild(t, args...)
	start := time.Now()
	c.waitLog(t, "partitions assigned")
	kafkatest.WaitConsumed(t, addrs, "big", "events")
	var tally kafkatest.Tally
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Second) {
		tally = tallyBroadcast(t, kafkatest.ReadCommitted(t, addrs, "actions.push"), members, []int64{tick})
		if tally.Outputs >= members || time.Now().After(deadline) {
			break
		}
	}
	converged := time.Since(start)
	if code := c.term(t); code != 0 {
		t.Errorf("processor exited %d after SIGTERM, want 0 (log %s)", code, c.log.Name())
	}
	txns := kafkatest.CheckTransactions(t, addrs, "actions.push")
	kafkatest.ReportChaos(t, kafkatest.ChaosRow{Scenario: fmt.Sprintf("SIGKILL in a %d-member broadcast (%d of %d kills at the mid-broadcast failpoint; events = expected actions)", members, atPoint, kills),
		Cycles: kills, Tally: tally, Txns: &txns, Recovery: converged, Seed: seed, Restarts: recoveries(t)})
	if !tally.Exact() {
		t.Fatalf("broadcast actions not exactly once: %+v", tally)
	}
	if atPoint == 0 {
		t.Fatalf("no kill landed in the broadcast: the test exercised nothing")
	}
	if n := childLogsWith(t, deferringLog); n == 0 {
		t.Fatalf("no instance deferred input behind the pass: the backlog was not exercised")
	}
	t.Logf("%d members, %d kills (%d mid-broadcast), exact; final instance converged in %s", members, kills, atPoint, converged)
}
