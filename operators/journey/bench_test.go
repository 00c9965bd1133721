package journey

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
)

// benchDefs generates n journeys over 20 entry events, each with a wait, a
// did branch, two actions, exit_on and a goal, and one policy.
func benchDefs(n int) string {
	var b strings.Builder
	b.WriteString("kind: policy\nid: p\nfrequency_caps: [{channel: push, max: 5, per: 1h}]\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `---
kind: journey
id: j%03d
entry: {event: e%02d, when: 'event.props.v > %d', reentry: after_exit}
exit_on: [purchase]
goal: {event: purchase, within: 1d}
nodes:
  w: {wait: %ds, next: b}
  b:
    branch:
      - when: {did: view_item, within: 1h, count: ">= 2"}
        next: push
      - else: mail
  push: {action: {channel: push, template: t, params: {v: "{{ entry.props.v }}"}}}
  mail: {action: {channel: email, template: t}}
`, i, i%20, i%3, 30+i)
	}
	return b.String()
}

func BenchmarkJourney100Defs(b *testing.B) {
	docs, err := defs.Parse("bench.yaml", []byte(benchDefs(100)))
	if err != nil {
		b.Fatal(err)
	}
	op, err := New(docs, Options{})
	if err != nil {
		b.Fatal(err)
	}
	const users, round = 1_000_000, 1 << 16
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"view_item", "view_item", "purchase", "app_open", "noise"}
	for i := 0; i < 20; i++ {
		names = append(names, fmt.Sprintf("e%02d", i))
	}
	evs := make([]engine.Event, round)
	for i := range evs {
		evs[i] = engine.Event{
			UserID: fmt.Sprintf("user-%d", rng.IntN(users)),
			Name:   names[rng.IntN(len(names))],
			Props:  map[string]any{"v": rng.IntN(5)},
		}
	}
	var l *engine.Local
	defer func() {
		if l != nil {
			l.Close()
		}
	}()
	outputs := 0
	b.ReportAllocs()
	b.ResetTimer()
	if l, err = engine.NewLocal(0, op); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		ev := evs[i%round]
		ev.TS = 1_700_000_000_000 + int64(i)*50 // 20 events/s of event time
		outs, err := l.Process(ev)
		if err != nil {
			b.Fatal(err)
		}
		outputs += len(outs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(outputs)/float64(b.N), "outputs/event")
}

// BenchmarkBroadcast measures one broadcast pass over a segment of 20,000
// members through engine.Local (one commit per pass), slices of 1,000:
// members/s is the rate at which members enter and get their action.
// BenchmarkBroadcast enters every member of a segment by a scheduled
// journey: 20,000 members, or CAIRN_BROADCAST_MEMBERS (the figure
// is for 1,000,000: run it with -benchtime 1x).
func BenchmarkBroadcast(b *testing.B) {
	members := 20_000
	if n, err := strconv.Atoi(os.Getenv("CAIRN_BROADCAST_MEMBERS")); err == nil && n > 0 {
		members = n
	}
	l, _ := segLocal(b, dailyGold, Options{})
	for i := range members {
		process(b, l, fmt.Sprintf("u%06d", i), "$profile_set", bcT0+int64(i), tier("gold"))
	}
	outputs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		outs := advance(b, l, bcTick1+int64(i)*msPerDay)
		outputs += len(outs)
	}
	if outputs < b.N*members {
		b.Fatalf("%d outputs for %d passes of %d members", outputs, b.N, members)
	}
	b.ReportMetric(float64(b.N*members)/b.Elapsed().Seconds(), "members/s")
}
