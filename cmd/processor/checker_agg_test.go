package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/operators/funnel"
	"github.com/cairn-cjo/cairn/operators/journey"
)

// checkerFunnel is the checker's funnel over its tick events: a tick's
// props.k (0, 1 or 2, fixed by user and sequence number) picks the step it
// matches, props.g its group, and the hour buckets split the ticks that
// cross 10:00. Its counts are recomputed by funnelReference.
const checkerFunnel = `kind: funnel
id: chk-f
window: 4s
bucket: hour
group_by: 'event.props.g'
steps:
  - {event: tick, when: 'int(event.props.k) == 0'}
  - {event: tick, when: 'int(event.props.k) == 1'}
  - {event: tick, when: 'int(event.props.k) == 2'}
`

// checkerFunnelWindow is checkerFunnel's window, in milliseconds.
const checkerFunnelWindow = 4_000

// checkerStep is the funnel step (0, 1 or 2) of user u's tick seq: mixed
// enough that depths 1, 2 and 3 all occur.
func checkerStep(u, seq int) int { return (seq*seq + u*seq/3 + u) % 3 }

// tickEvent is the wire form of the checker's tick: the input the journeys,
// the funnel and the reference all read.
type tickEvent struct {
	UserID string `json:"user_id"`
	Event  string `json:"event"`
	TS     int64  `json:"ts"`
	Props  struct {
		K int    `json:"k"`
		G string `json:"g"`
	} `json:"props"`
}

// funnelReference recomputes checkerFunnel's counts by (bucket, group),
// summed over partitions, straight from docs/funnels.md: every k=0 tick
// starts an attempt; its depth is how far the following ticks, in order and
// within the window, match steps 2 and 3; count[j] is the number of users
// with an attempt of depth >= j in the (bucket, group) of the attempt's
// first tick. input is the committed events topic, so a user's ticks are in
// log order, which is also their ts order.
func funnelReference(input []*kgo.Record) (map[string][]int64, error) {
	byUser := map[string][]tickEvent{}
	for _, r := range input {
		var e tickEvent
		if err := json.Unmarshal(r.Value, &e); err != nil {
			return nil, fmt.Errorf("decoding input at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		if e.Event == "tick" {
			byUser[e.UserID] = append(byUser[e.UserID], e)
		}
	}
	counts := map[string][]int64{}
	for _, evs := range byUser {
		depth := map[string]int{} // bucket/group -> the user's deepest attempt there
		for i, first := range evs {
			if first.Props.K != 0 {
				continue
			}
			d := 1
			for _, e := range evs[i+1:] {
				if e.TS-first.TS > checkerFunnelWindow || d == 3 {
					break
				}
				if e.Props.K == d {
					d++
				}
			}
			key := time.UnixMilli(first.TS).UTC().Format("2006-01-02T15") + "/" + first.Props.G
			depth[key] = max(depth[key], d)
		}
		for key, d := range depth {
			if counts[key] == nil {
				counts[key] = make([]int64, 3)
			}
			for j := 0; j < d; j++ {
				counts[key][j]++
			}
		}
	}
	return counts, nil
}

// funnelFromAggregates sums checkerFunnel's rows of the aggregates topic
// over partitions, the latest upsert of each key only, as the query API
// does (funnel.Query), by "bucket/group".
func funnelFromAggregates(aggs []*kgo.Record) (map[string][]int64, error) {
	var rows []funnel.Row
	for _, r := range aggs {
		if !strings.HasPrefix(string(r.Key), "funnel/chk-f/") {
			continue
		}
		row, err := funnel.DecodeRow(r.Key, r.Value)
		if err != nil {
			return nil, fmt.Errorf("at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		rows = append(rows, row)
	}
	got := map[string][]int64{}
	for _, row := range funnel.Query(rows, "chk-f", "", "", "").Rows {
		c := make([]int64, len(row.Steps))
		for j, s := range row.Steps {
			c[j] = s.Count
		}
		got[row.Bucket+"/"+row.Group] = c
	}
	return got, nil
}

// countMismatches is the number of keys of want and got whose counts
// differ, a key on one side only included.
func countMismatches(want, got map[string][]int64) int {
	n := 0
	for k, w := range want {
		if !slices.Equal(w, got[k]) {
			n++
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			n++
		}
	}
	return n
}

// journeyWant are the journey counters the checker expects once all input
// is processed: per journey id, the summed entered, exited, active and
// actions.
type journeyWant map[string][4]int64

// checkerJourneyWant is journeyWant for users × perUser ticks: chk enters,
// acts and exits once per tick; chk-wait enters on every tenth tick, acts
// on every one but the last (whose wait never falls due without later
// ticks) and holds that one open.
func checkerJourneyWant(users, perUser int) journeyWant {
	ticks, tenths := int64(users*perUser), int64(users*(perUser/10))
	return journeyWant{
		"chk":      {ticks, ticks, 0, ticks},
		"chk-wait": {tenths, tenths - int64(users), int64(users), tenths - int64(users)},
	}
}

// journeyMismatches sums the journey stats of the aggregates topic over
// partitions (latest upsert per key) and counts the expected counters of
// want that differ.
func journeyMismatches(aggs []*kgo.Record, want journeyWant) (int, error) {
	latest := map[string][]byte{}
	for _, r := range aggs {
		if strings.HasPrefix(string(r.Key), "journey/") {
			latest[string(r.Key)] = r.Value
		}
	}
	values := make([][]byte, 0, len(latest))
	for _, v := range latest {
		values = append(values, v)
	}
	sums, err := journey.SumStats(values)
	if err != nil {
		return 0, fmt.Errorf("summing journey stats: %w", err)
	}
	got := map[string][4]int64{}
	for _, s := range sums {
		g := got[s.Journey]
		got[s.Journey] = [4]int64{g[0] + s.Entered, g[1] + s.Exited, g[2] + s.Active, g[3] + s.Actions}
	}
	n := 0
	for id, w := range want {
		for i := range w {
			if got[id][i] != w[i] {
				n++
			}
		}
	}
	return n, nil
}

// checkAggregates compares the committed aggregates with a recomputation
// from the committed input: checkerFunnel's counts by bucket and group
// against funnelReference, and the journeys' counters against want. It
// returns the number of mismatching funnel rows and journey counters, and
// logs each mismatching funnel row.
func checkAggregates(t *testing.T, input, aggs []*kgo.Record, want journeyWant) int {
	t.Helper()
	ref, err := funnelReference(input)
	if err != nil {
		t.Fatal(err)
	}
	got, err := funnelFromAggregates(aggs)
	if err != nil {
		t.Fatal(err)
	}
	var deepest int64
	for _, c := range ref {
		deepest += c[2]
	}
	if deepest == 0 {
		t.Fatal("no attempt of the checker's input reaches the funnel's last step: the aggregate check would check little")
	}
	n := countMismatches(ref, got)
	if n > 0 {
		t.Logf("funnel chk-f: aggregates %v, recomputed from the input %v", got, ref)
	}
	jn, err := journeyMismatches(aggs, want)
	if err != nil {
		t.Fatal(err)
	}
	if jn > 0 {
		t.Logf("journey stats: %d counters differ from %v", jn, want)
	}
	return n + jn
}

// TestCheckerAggregateCheckCanFail feeds the aggregate check a hand-made
// input and aggregates topic: the right counts (split over two partitions,
// with an earlier upsert superseded) match, and each deliberately wrong
// aggregate is seen as a mismatch.
func TestCheckerAggregateCheckCanFail(t *testing.T) {
	t0 := time.Date(2025, 6, 3, 9, 59, 58, 0, time.UTC).UnixMilli()
	tick := func(user string, ts int64, k int, g string) *kgo.Record {
		return &kgo.Record{Topic: "events", Value: fmt.Appendf(nil, `{"user_id":%q,"event":"tick","ts":%d,"props":{"k":%d,"g":%q}}`, user, ts, k, g)}
	}
	input := []*kgo.Record{
		tick("a", t0, 0, "g0"), tick("a", t0+1000, 1, "g0"), tick("a", t0+2000, 2, "g0"), // depth 3 in 09
		tick("b", t0, 0, "g0"), tick("b", t0+1000, 2, "g0"), // depth 1 in 09
		tick("b", t0+3000, 0, "g1"), tick("b", t0+8000, 1, "g1"), // depth 1 in 10: step 2 out of the window
	}
	row := func(bucket, group string, p int32, steps ...int64) *kgo.Record {
		r := funnel.Row{Funnel: "chk-f", Bucket: bucket, Group: group, Partition: p, Steps: steps}
		v, _ := json.Marshal(r)
		return &kgo.Record{Topic: "chk-aggregates", Key: []byte(r.Key()), Value: v}
	}
	stats := func(id string, p int32, entered, exited, active, actions int64) *kgo.Record {
		v, _ := json.Marshal(journey.Stats{Journey: id, Version: 1, Partition: p, Entered: entered, Exited: exited, Active: active, Actions: actions})
		return &kgo.Record{Topic: "chk-aggregates", Key: []byte(journey.StatsKey(id, 1, p)), Value: v}
	}
	right := []*kgo.Record{
		row("2025-06-03T09", "g0", 0, 1, 0, 0), row("2025-06-03T09", "g0", 0, 1, 1, 1), // a, upserted twice
		row("2025-06-03T09", "g0", 1, 1, 0, 0), // b
		row("2025-06-03T10", "g1", 1, 1, 0, 0),
		stats("chk", 0, 4, 4, 0, 4), stats("chk", 1, 3, 3, 0, 3),
	}
	want := journeyWant{"chk": {7, 7, 0, 7}}
	cases := []struct {
		name string
		aggs []*kgo.Record
		want int
	}{
		{"right", right, 0},
		{"a count too high", append(slices.Clone(right), row("2025-06-03T09", "g0", 1, 1, 1, 0)), 1},
		{"stale upsert last", append(slices.Clone(right), row("2025-06-03T09", "g0", 0, 1, 0, 0)), 1},
		{"superseded upsert dropped", right[1:], 0},
		{"a partition's row missing", slices.Concat(right[:2], right[3:]), 1},
		{"a row in another group", append(slices.Clone(right), row("2025-06-03T10", "g2", 0, 1, 0, 0)), 1},
		{"a journey counter off", append(slices.Clone(right), stats("chk", 1, 3, 2, 1, 3)), 2},
		{"journey stats lost", right[:4], 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkAggregates(t, input, tc.aggs, want); got != tc.want {
				t.Fatalf("%d mismatches, want %d", got, tc.want)
			}
		})
	}
}
