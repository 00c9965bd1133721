package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/internal/kafkatest"
)

// checkerDefs are the fault campaign's checker journeys: chk sends exactly
// one action per tick event (through a split, so both arms are covered) and
// chk-wait one more, after a 2 s wait (a durable timer), for every tenth.
const checkerDefs = `kind: journey
id: chk
entry: {event: tick, reentry: after_exit}
start: split
nodes:
  split: {split: [{weight: 50, next: a}, {weight: 50, next: b}]}
  a: {action: {channel: push, template: chk-a, params: {seq: '{{ entry.props.seq }}'}}}
  b: {action: {channel: push, template: chk-b, params: {seq: '{{ entry.props.seq }}'}}}
---
kind: journey
id: chk-wait
entry: {event: tick, when: 'int(event.props.seq) % 10 == 0', reentry: after_exit}
start: w
nodes:
  w: {wait: 2s, next: late}
  late: {action: {channel: push, template: chk-late, params: {seq: '{{ entry.props.seq }}'}}}
`

// checkerAction is the part of an action the checker reads.
type checkerAction struct {
	ActionID string            `json:"action_id"`
	UserID   string            `json:"user_id"`
	Template string            `json:"template"`
	Params   map[string]string `json:"params"`
}

// TestCheckerJourneyUnderKills is the campaign's journey checker: users
// send tick events with a per-user sequence number, one second of event
// time apart, while the processor is SIGKILLed at random moments. Every
// tick must have exactly one chk action, in sequence order per user, and
// every tenth tick (but the last ten of a user, whose wait may not be due
// yet) exactly one chk-wait action; no action id may appear twice. The
// committed aggregates must match a recomputation from the committed
// input: checkerFunnel's counts and the journeys' counters.
func TestCheckerJourneyUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	kills := 6
	if os.Getenv("CAIRN_CHAOS_CYCLES") != "" {
		kills = crashCycles()
	}
	users, perUser := 30, 10*max(6, kills) // ten ticks per user and kill: input flows when the kills land
	b, defs := counterSetup(t)
	writeCheckerDefs(t, defs)
	evs := checkerEvents(users, perUser)
	args := func(dir string) []string {
		return []string{"run", "--brokers", b[0], "--app-id", "chk", "--definitions", defs,
			"--state-dir", dir, "--http", "127.0.0.1:0", "--instance-id", "chk", "--idle-advance=false",
			"--commit-interval", "30ms", "--session-timeout", "2s", "--rebalance-timeout", "5s", "--transaction-timeout", "8s", "--log-level", "info"}
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 17))
	chunk := (len(evs) + kills - 1) / kills
	dir := t.TempDir()
	for i := 0; i < kills; i++ { // a chunk of input per cycle, so kills land while it flows
		kafkatest.ProduceEvents(t, b, "events", evs[i*chunk:min((i+1)*chunk, len(evs))])
		if i%3 == 2 { // the state dir is lost: a full restore from the changelog
			dir = t.TempDir()
		}
		c := startChildEnv(t, restoreDigestEnv, args(dir)...)
		if i%2 == 1 {
			c.waitLog(t, "partitions assigned")
		}
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		c.kill()
	}
	kafkatest.WaitGroupEmpty(t, b, "chk")
	c := startChildEnv(t, restoreDigestEnv, args(t.TempDir())...) // restored from the changelog alone
	c.waitLog(t, "partitions assigned")
	kafkatest.WaitConsumed(t, b, "chk", "events")
	if code := c.term(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	row := kafkatest.ChaosRow{Scenario: "checker journeys (one action per tick through a split, one more after a wait per tenth tick) and funnel, SIGKILL at random moments, every third restart and the last on an empty state dir; events = expected actions",
		Cycles: kills, Seed: seed, Restarts: recoveries(t)}
	reportChecker(t, b, "chk", defs, users, perUser, row)
}

// writeCheckerDefs writes the checker journeys and funnel to defs.
func writeCheckerDefs(t *testing.T, defs string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(defs, "checker.yaml"), []byte(checkerDefs+"---\n"+checkerFunnel), 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkerEvents are the checker's input: perUser ticks per user, one second
// of event time apart from 9:59:31 (so that the funnel's hour buckets split
// them), each with its sequence number, funnel step and group.
func checkerEvents(users, perUser int) []kafkatest.Event {
	t0 := time.Date(2025, 6, 3, 9, 59, 30, 0, time.UTC).UnixMilli()
	var evs []kafkatest.Event
	for seq := 1; seq <= perUser; seq++ {
		for u := 0; u < users; u++ {
			evs = append(evs, kafkatest.Event{UserID: fmt.Sprintf("c-%d", u), Event: "tick", TS: t0 + int64(seq)*1000,
				Props:   map[string]any{"seq": seq, "k": checkerStep(u, seq), "g": fmt.Sprintf("g%d", u%3)},
				EventID: fmt.Sprintf("t-%d-%d", u, seq)})
		}
	}
	return evs
}

// reportChecker checks the checker's committed outputs once app has
// consumed all input: actions exactly once and in order, aggregates equal
// to their recomputation from the committed input, no hanging transaction,
// and the state every restore rebuilt (logged by children started with
// restoreDigestEnv) equal to a crash-free run's at the same input offset.
// It reports row with the figures, then fails the test if any is wrong.
func reportChecker(t *testing.T, addrs []string, app, defs string, users, perUser int, row kafkatest.ChaosRow) {
	t.Helper()
	input := kafkatest.ReadCommitted(t, addrs, "events")
	row.Tally = checkActions(t, kafkatest.ReadCommitted(t, addrs, "actions.push"), users, perUser)
	aggs := checkAggregates(t, input, kafkatest.ReadCommitted(t, addrs, app+"-aggregates"), checkerJourneyWant(users, perUser))
	txns := kafkatest.CheckTransactions(t, addrs, "actions.push", app+"-aggregates")
	row.AggMismatches, row.Txns = &aggs, &txns
	restores, bad := checkRestoreDigests(t, input, 4, defs)
	row.Failures += bad
	row.Scenario += fmt.Sprintf("; state after each of %d restores: %d digests differ from the crash-free run's at the same input offset", restores, bad)
	kafkatest.ReportChaos(t, row)
	if !row.Exact() || restores == 0 {
		t.Fatalf("checker: actions %+v, %d aggregate mismatches, %d of %d restored states differ (seed %d)", row.Tally, aggs, bad, restores, row.Seed)
	}
	t.Logf("%d cycles, %d actions exact, aggregates equal to their recomputation, %d restored states equal to the crash-free run's",
		row.Cycles, row.Tally.Outputs, restores)
}

// checkActions tallies the checker's actions against the expected ones:
// lost, duplicated (an action id twice, or two actions for one tick) and
// out of order (a user's chk actions not in sequence order).
func checkActions(t *testing.T, recs []*kgo.Record, users, perUser int) kafkatest.Tally {
	t.Helper()
	var c kafkatest.Tally
	ids := map[string]bool{}
	chk := map[string][]int{}        // user -> seqs of chk actions, in log order
	late := map[string]map[int]int{} // user -> seq -> chk-wait actions
	for _, r := range recs {
		var a checkerAction
		if err := json.Unmarshal(r.Value, &a); err != nil {
			t.Fatalf("decoding action at %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
		}
		c.Outputs++
		if ids[a.ActionID] {
			c.Duplicated++
		}
		ids[a.ActionID] = true
		seq, _ := strconv.Atoi(a.Params["seq"])
		switch a.Template {
		case "chk-a", "chk-b":
			chk[a.UserID] = append(chk[a.UserID], seq)
		case "chk-late":
			if late[a.UserID] == nil {
				late[a.UserID] = map[int]int{}
			}
			late[a.UserID][seq]++
		}
	}
	for u := 0; u < users; u++ {
		user := fmt.Sprintf("c-%d", u)
		c.Events += perUser
		seen := map[int]int{}
		for i, s := range chk[user] {
			seen[s]++
			if i > 0 && s <= chk[user][i-1] {
				c.OutOfOrder++
			}
		}
		for s := 1; s <= perUser; s++ {
			switch n := seen[s]; {
			case n == 0:
				c.Lost++
			case n > 1:
				c.Duplicated += n - 1
			}
		}
		for s := 10; s <= perUser-10; s += 10 {
			c.Events++
			switch n := late[user][s]; {
			case n == 0:
				c.Lost++
			case n > 1:
				c.Duplicated += n - 1
			}
		}
	}
	return c
}
