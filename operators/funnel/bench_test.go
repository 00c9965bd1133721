package funnel

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cairn-cjo/cairn/engine"
)

// demoNames are the events of the demo stream.
var demoNames = []string{"app_open", "view_item", "add_to_cart", "purchase"}

// benchFunnels returns n funnel definitions over the demo events, varied in
// steps, window, grouping and bucket.
func benchFunnels(n int) string {
	var docs []string
	for i := range n {
		steps := []string{"view_item", "add_to_cart", "purchase"}
		if i%3 == 1 {
			steps = []string{"app_open", "view_item", "purchase"}
		} else if i%3 == 2 {
			steps = []string{"app_open", "add_to_cart"}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "kind: funnel\nid: f%d\nwindow: %dh\nbucket: %s\n", i, 1+i%24, []string{"day", "hour"}[i%2])
		if i%2 == 0 {
			b.WriteString("group_by: 'event.props.channel'\n")
		}
		b.WriteString("steps:\n")
		for _, s := range steps {
			if s == "purchase" {
				b.WriteString("  - {event: purchase, when: 'event.props.amount > 0'}\n")
			} else {
				fmt.Fprintf(&b, "  - {event: %s}\n", s)
			}
		}
		docs = append(docs, b.String())
	}
	if n == 0 {
		return "kind: segment\nid: none\n"
	}
	return strings.Join(docs, "---\n")
}

// demoStream returns a deterministic generator of demo events for users
// users: a user's sessions are app_open, then views, carts and purchases,
// with events 1 to 60 s apart in partition order.
func demoStream(users int) func(i int) engine.Event {
	r := rand.New(rand.NewPCG(1, 2))
	props := make([]map[string]any, 64)
	for i := range props {
		props[i] = map[string]any{"sku": fmt.Sprintf("s%d", i%16), "price": 5 + i, "amount": i % 3 * 10,
			"channel": []string{"web", "app", "email"}[i%3]}
	}
	ts := base
	return func(i int) engine.Event {
		ts += 1000 * int64(1+r.IntN(60)) / int64(max(1, users/100))
		return engine.Event{UserID: fmt.Sprintf("user-%d", r.IntN(users)),
			Name: demoNames[r.IntN(len(demoNames))], TS: ts, Props: props[r.IntN(len(props))]}
	}
}

func BenchmarkIngest(b *testing.B) {
	for _, n := range []int{0, 1, 10, 50} {
		b.Run(fmt.Sprintf("funnels=%d", n), func(b *testing.B) {
			op := mustNew(b, benchFunnels(n))
			l, err := engine.NewLocal(0, op)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			next := demoStream(10000)
			evs := make([]engine.Event, 1<<16)
			for i := range evs {
				evs[i] = next(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				e := evs[i%len(evs)]
				e.TS += int64(i/len(evs)) * 86_400_000 * 30 // later laps are later in time
				if _, err := l.Process(e); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkStateBytesPerUser processes about 20 hours of the demo stream
// for 2,000 users (50,000 events, 25 per user) and reports the funnel state
// per user (keys and values) and the partition's shared counts. It is a
// fixed workload: it ignores b.N, and its ns/op is the whole run.
func BenchmarkStateBytesPerUser(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("funnels=%d", n), func(b *testing.B) {
			perUser, shared := stateBytes(b, n, 2000, 50_000)
			b.ReportMetric(perUser, "state-bytes/user")
			b.ReportMetric(shared, "shared-bytes")
		})
	}
}

func stateBytes(b *testing.B, funnels, users, events int) (perUser, shared float64) {
	b.Helper()
	op := mustNew(b, benchFunnels(funnels))
	l, err := engine.NewLocal(0, op)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	next := demoStream(users)
	for i := range events {
		if _, err := l.Process(next(i)); err != nil {
			b.Fatal(err)
		}
	}
	total := 0
	for u := range users {
		total += userBytes(b, l, fmt.Sprintf("user-%d", u))
	}
	var sh int
	err = l.ScanShared(OperatorName, func(sub, v []byte) error { sh += len(sub) + len(v); return nil })
	if err != nil {
		b.Fatal(err)
	}
	return float64(total) / float64(users), float64(sh)
}
