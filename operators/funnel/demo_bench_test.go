package funnel

import (
	"fmt"
	"testing"
	"time"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/demo"
	"github.com/cairn-cjo/cairn/operators/count"
)

// pipelineEvents returns the workload of `processor bench` (bench.prefill):
// n demo events of 10,000 users over one hour, in session order.
func pipelineEvents(n int) []engine.Event {
	g := demo.NewGenerator(1, 10_000)
	ts := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).UnixMilli()
	step := max(1, time.Hour.Milliseconds()/int64(n))
	var queue []demo.Event
	out := make([]engine.Event, 0, n)
	for i := 0; i < n; i++ {
		if len(queue) == 0 {
			queue = g.Session()
		}
		e := queue[0]
		queue = queue[1:]
		out = append(out, engine.Event{UserID: e.UserID, Name: e.Event, TS: ts + int64(i)*step, Props: e.Props})
	}
	return out
}

// BenchmarkIngestPipeline runs the workload of the pipeline benchmark
// through one in-memory partition, against the counting operator of its
// baseline. The first b.N events of the workload are processed (so state
// grows as in the pipeline run); compare ns/op at the same -benchtime=Nx.
// It also reports the funnel state per user after those events. Every
// event is its own transaction here (engine.Local), so the work the
// pipeline does once per user and transaction is done per event.
func BenchmarkIngestPipeline(b *testing.B) {
	for _, n := range []int{-1, 1, 10, 50} {
		name := fmt.Sprintf("funnels=%d", n)
		if n < 0 {
			name = "counter"
		}
		b.Run(name, func(b *testing.B) {
			var op engine.Operator = &count.Counter{ID: "c", Topic: "counts"}
			if n >= 0 {
				op = mustNew(b, GenerateDefinitions(n))
			}
			l, err := engine.NewLocal(0, op)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			evs := pipelineEvents(max(b.N, 1000))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := l.Process(evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			if n > 0 {
				b.StopTimer()
				b.ReportMetric(pipelineStateBytes(b, l, evs[:b.N]), "state-bytes/user")
			}
		})
	}
}

// pipelineStateBytes returns the mean funnel state (keys and values) of the
// users of evs.
func pipelineStateBytes(b *testing.B, l *engine.Local, evs []engine.Event) float64 {
	b.Helper()
	seen := map[string]bool{}
	total := 0
	for _, e := range evs {
		if !seen[e.UserID] {
			seen[e.UserID] = true
			total += userBytes(b, l, e.UserID)
		}
	}
	return float64(total) / float64(max(1, len(seen)))
}
