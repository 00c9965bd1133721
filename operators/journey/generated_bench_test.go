package journey_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

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
	op := generatedOperator(b, 100)
	evs := workloadEvents(b, 1<<15)
	l, err := engine.NewLocal(0, op)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).UnixMilli()
	outputs := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev := evs[i%len(evs)]
		ev.TS += t0 + int64(i)*180
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
