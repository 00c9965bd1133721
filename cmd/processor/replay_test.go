package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairn-cjo/cairn/internal/broker"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/state"
)

// demoLog is a deterministic event log in the past: sessions of users
// walking the purchase funnel over two hours of event time.
func demoLog(seed uint64, users, n int) []kafkatest.Event {
	rng := rand.New(rand.NewPCG(seed, 3))
	t0 := time.Date(2025, 6, 2, 7, 0, 0, 0, time.UTC).UnixMilli()
	names := []string{"app_open", "view_item", "view_item", "add_to_cart", "purchase"}
	var evs []kafkatest.Event
	for i := 0; len(evs) < n; i++ {
		u := fmt.Sprintf("u-%d", rng.IntN(users))
		ts := t0 + int64(i)*2_000
		if i%40 == 0 {
			evs = append(evs, kafkatest.Event{UserID: u, Event: "$profile_set", TS: ts,
				Props: map[string]any{"tier": []string{"gold", "silver"}[rng.IntN(2)], "tz": "Europe/Paris"}, EventID: fmt.Sprintf("p-%d", i)})
		}
		name := names[rng.IntN(len(names))]
		evs = append(evs, kafkatest.Event{UserID: u, Event: name, TS: ts,
			Props:   map[string]any{"sku": fmt.Sprintf("sku-%d", rng.IntN(4)), "price": 5 + rng.IntN(50), "amount": 5 + rng.IntN(50), "channel": "app"},
			EventID: fmt.Sprintf("e-%d", i)})
	}
	return evs
}

// outputs returns, per output topic, the committed records as "key value"
// lines, sorted, so two runs compare byte for byte whatever the interleaving
// across partitions.
func outputs(t *testing.T, addrs []string) map[string][]string {
	t.Helper()
	adm := kadm.NewClient(kafkatest.Client(t, addrs))
	topics, err := adm.ListTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, name := range topics.Names() {
		if strings.HasPrefix(name, "actions.") || strings.HasPrefix(name, "counts.") || strings.HasSuffix(name, "-aggregates") {
			kafkatest.WaitNoOpenTransactions(t, addrs, name)
		}
		switch {
		case strings.HasPrefix(name, "actions.") || strings.HasPrefix(name, "counts."):
			for _, r := range kafkatest.ReadCommitted(t, addrs, name) {
				out[name] = append(out[name], string(r.Key)+" "+string(r.Value))
			}
		case strings.HasSuffix(name, "-aggregates"):
			// Upserts depend on commit boundaries; their final values do not.
			latest := map[string]string{}
			for _, r := range kafkatest.ReadCommitted(t, addrs, name) {
				latest[string(r.Key)] = string(r.Value)
			}
			for k, v := range latest {
				out["aggregates (final)"] = append(out["aggregates (final)"], k+" "+v)
			}
		}
		sort.Strings(out[name])
	}
	sort.Strings(out["aggregates (final)"])
	return out
}

// multisetDiff counts the lines of want missing from got (lost) and the
// lines of got beyond their count in want (duplicated or wrong).
func multisetDiff(want, got []string) (lost, dup int) {
	n := map[string]int{}
	for _, l := range want {
		n[l]++
	}
	for _, l := range got {
		n[l]--
	}
	for _, c := range n {
		if c > 0 {
			lost += c
		} else {
			dup -= c
		}
	}
	return lost, dup
}

// stateDigest returns a digest of every key and value of the store in dir
// but the partitions' markers, which hold changelog offsets and so depend
// on how many transactions aborted. Two stores that processed the same
// input to the same offsets must have the same digest. With
// CAIRN_DIGEST_DUMP=dir, every key and value is also written to
// dir/<store dir name>.txt, to diff two stores that differ.
func stateDigest(t *testing.T, dir string) string {
	t.Helper()
	st, err := state.OpenPebble(dir, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dump := os.Getenv("CAIRN_DIGEST_DUMP")
	digest, keys, err := state.Digest(st, nil, []byte{0xff, 0xff, 0xff, 0xff, 0xff}, func(k, v []byte) bool {
		if dk, err := state.DecodeKey(k); err == nil && dk.Tag == state.TagMeta && dk.Name == "marker" {
			return true
		}
		if dump != "" {
			f, _ := os.OpenFile(dump+"/"+filepath.Base(dir)+".txt", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			fmt.Fprintf(f, "%q %q\n", k, v)
			f.Close()
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s (%d keys)", digest, keys)
}

// TestJourneyReplayUnderCrashesIsByteIdentical processes the same event log
// twice with the example definitions (journeys, segments, funnels, a
// counter): once cleanly, once with SIGKILLs and a second instance joining
// and leaving. Every committed action and the final value of every
// aggregate (funnel counts, segment sizes, journey stats) must be byte for
// byte the same, and so must the final store: in the crashed run it is
// rebuilt from the changelog alone.
func TestJourneyReplayUnderCrashesIsByteIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("kills real processes")
	}
	kills := 8
	if os.Getenv("CAIRN_CHAOS_CYCLES") != "" {
		kills = crashCycles()
	}
	evs := demoLog(7, 200, 15000*max(1, kills/8)) // enough input for the kills to land while it flows
	seed := uint64(time.Now().UnixNano())
	run := func(chaos bool) (map[string][]string, string) {
		b := kafkatest.Start(t, broker.Options{})
		addrs := b.Addrs()
		kafkatest.CreateTopic(t, addrs, "events", 4, nil)
		kafkatest.ProduceEvents(t, addrs, "events", evs)
		args := func(id, dir string) []string {
			return []string{"run", "--brokers", addrs[0], "--app-id", "replay", "--definitions", "../../examples",
				"--state-dir", dir, "--http", "127.0.0.1:0", "--instance-id", id, "--idle-advance=false",
				"--commit-interval", "30ms", "--session-timeout", "2s", "--rebalance-timeout", "5s", "--transaction-timeout", "8s", "--log-level", "info"}
		}
		if chaos {
			rng := rand.New(rand.NewPCG(seed, 5))
			for i := 0; i < kills; i++ {
				c := startChild(t, args("a", t.TempDir())...)
				c.waitLog(t, "cairn instance starting")
				if i%2 == 1 { // half the kills land while it processes, the others anywhere from the start
					c.waitLog(t, "partitions assigned")
				}
				time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
				if i == 2 {
					second := startChild(t, args("b", t.TempDir())...)
					time.Sleep(1500 * time.Millisecond)
					second.kill()
				}
				c.kill()
			}
		}
		kafkatest.WaitGroupEmpty(t, addrs, "replay")
		dir := t.TempDir() // fresh: after crashes, the final state is all restored from the changelog
		c := startChild(t, args("a", dir)...)
		c.waitLog(t, "partitions assigned") // SIGTERM must not race the start-up
		kafkatest.WaitConsumed(t, addrs, "replay", "events")
		if code := c.term(t); code != 0 {
			t.Errorf("exit code %d after SIGTERM", code)
		}
		return outputs(t, addrs), stateDigest(t, dir)
	}
	clean, cleanState := run(false)
	crashed, crashedState := run(true)
	if cleanState != crashedState {
		t.Errorf("state after crashes (restored from the changelog) has digest %s, the crash-free run's %s", crashedState, cleanState)
	}
	total, aggs := 0, 0
	var tally kafkatest.Tally
	for topic, want := range clean {
		got := crashed[topic]
		total += len(want)
		lost, dup := multisetDiff(want, got)
		if topic == "aggregates (final)" { // a wrong value is one lost and one extra line
			aggs += max(lost, dup)
		} else {
			tally.Events, tally.Outputs = tally.Events+len(want), tally.Outputs+len(got)
			tally.Lost, tally.Duplicated = tally.Lost+lost, tally.Duplicated+dup
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: %d records after crashes, %d in the clean run, or different bytes", topic, len(got), len(want))
		}
	}
	kafkatest.ReportChaos(t, kafkatest.ChaosRow{Scenario: "journeys, segments and funnels (examples), SIGKILL at random moments; events and outputs = output records (actions, counts) of the crash-free run and of the crashed one, compared byte for byte; aggregate mismatches = final aggregate values that differ",
		Cycles: kills, Tally: tally, Seed: seed, Restarts: recoveries(t), AggMismatches: &aggs})
	if len(crashed) != len(clean) || total < 100 {
		t.Fatalf("topics %d vs %d, %d actions in all: the log must trigger journeys", len(crashed), len(clean), total)
	}
	t.Logf("%d output records over %d topics, byte-identical; state digest %s in both runs", total, len(clean), cleanState)
}
