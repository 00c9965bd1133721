package journey_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/bench"
	"github.com/cairn-cjo/cairn/bench/workload"
	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/operators/defs"
	"github.com/cairn-cjo/cairn/operators/journey"
)

// BenchmarkJourneyGenerated runs the journeys of `processor bench
// --generate 100/0/0` (bench.GenerateDefinitions: 100 journeys entered on
// the first three session steps, a 1–10 minute wait, a did branch, an
// action, exit_on and a goal, and a policy) over the bench workload's
// events (Zipf users, sessions, profile updates, late events), through
// engine.Local with one commit per event. Event time advances 180 ms per
// event, the pace of the end-to-end prefill (20,000 events over an hour),
// so waits end and timers fire as they do there. It lives in an external
// test package because bench imports this package.
func BenchmarkJourneyGenerated(b *testing.B) {
	benchEvents(b, generatedOperator(b, 100), workloadEvents(b, 1<<15), 180)
}

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

// BenchmarkJourney100Defs runs benchDefs(100) over events of 1,000,000
// users drawn uniformly, 20 events/s of event time.
func BenchmarkJourney100Defs(b *testing.B) {
	docs, err := defs.Parse("bench.yaml", []byte(benchDefs(100)))
	if err != nil {
		b.Fatal(err)
	}
	op, err := journey.New(docs, journey.Options{})
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
	benchEvents(b, op, evs, 50)
}

// benchEvents processes b.N events through engine.Local, cycling through
// evs, the i-th at evs[i%len(evs)].TS + t0 + i*stepMS, and reports
// events/s and outputs per event.
func benchEvents(b *testing.B, op engine.Operator, evs []engine.Event, stepMS int64) {
	l, err := engine.NewLocal(0, op)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	const t0 = 1_700_000_000_000
	outputs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		ev.TS += t0 + int64(i)*stepMS
		outs, err := l.Process(ev)
		if err != nil {
			b.Fatal(err)
		}
		outputs += len(outs)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(outputs)/float64(b.N), "outputs/event")
}

// generatedOperator builds the journey operator from n generated journeys.
func generatedOperator(tb testing.TB, n int) *journey.Operator {
	tb.Helper()
	dir := tb.TempDir()
	if err := bench.GenerateDefinitions(dir, bench.Sizes{Journeys: n}); err != nil {
		tb.Fatal(err)
	}
	name := filepath.Join(dir, "generated-journeys.yaml")
	text, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	docs, err := defs.Parse(name, text)
	if err != nil {
		tb.Fatal(err)
	}
	op, err := journey.New(docs, journey.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return op
}

// workloadEvents decodes n well-formed records of the bench workload (seed
// 1), with ts relative to the first (a late event keeps its lag).
func workloadEvents(tb testing.TB, n int) []engine.Event {
	tb.Helper()
	g, err := workload.New(workload.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	evs := make([]engine.Event, 0, n)
	for len(evs) < n {
		r := g.Next(0)
		if r.Kind == workload.Malformed {
			continue
		}
		ev, err := engine.DecodeEvent(r.Key, r.Value, 0)
		if err != nil {
			tb.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}
