package engine

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/cairn-cjo/cairn/state"
)

// BenchmarkTimerSetAndFire measures the timer path of one event as a
// journey wait gives it, with an operator whose firings do nothing: the
// clock advances (firing the timers now due), then the event's user (one
// of 10,000) sets or reschedules its timer 5 s ahead; a transaction
// commits (and syncs) every 500 events. About one timer fires per event
// once the first ones come due. Run it with -benchtime 200000x or more:
// shorter runs are mostly the first syncs.
func BenchmarkTimerSetAndFire(b *testing.B) {
	b.ReportAllocs()
	st, err := state.OpenPebble(b.TempDir(), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	c := newPartitionCore(0, st, []Operator{scripted{name: "journey", onTimer: func(*Context, *Timer) error { return nil }}}, DefaultStateCacheBytes, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.sink = func(Output) {}
	if err := c.load(); err != nil {
		b.Fatal(err)
	}
	defer c.batch.Close()
	users := make([]string, 10_000)
	for i := range users {
		users[i] = fmt.Sprintf("user-%07d", i*7919%len(users))
	}
	ts := int64(0)
	for i := 0; b.Loop(); i++ {
		ts += 3
		if err := c.advance(ts); err != nil {
			b.Fatal(err)
		}
		if err := c.setTimer("journey", users[i%len(users)], "j/welcome", ts+5000, []byte("payload of about thirty bytes")); err != nil {
			b.Fatal(err)
		}
		if i%500 == 499 {
			if err := c.batch.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
}
