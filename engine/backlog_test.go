package engine_test

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairn-cjo/cairn/engine"
	"github.com/cairn-cjo/cairn/internal/kafkatest"
	"github.com/cairn-cjo/cairn/state"
)

const passOut = "pass"

// pass is a broadcast in miniature: a "start" event arms a timer whose
// every firing takes sliceCost, emits "slice:i" and re-arms the timer at
// the same due time, until slices firings. Every other event emits
// "event:<id>", but one with props.fail, on which it fails. In event time
// all slices come between "start" and the next event.
type pass struct {
	slices    int
	sliceCost time.Duration
}

func (o *pass) Name() string     { return "pass" }
func (o *pass) Events() []string { return nil }

func (o *pass) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if ev.Props["fail"] != nil {
		return errors.New("cannot handle this event")
	}
	ctx.Emit(engine.Output{Topic: passOut, Key: []byte(ctx.UserID()), Value: []byte("event:" + ev.EventID)})
	if ev.Name == "start" {
		return ctx.SetTimer("pass", ev.TS+1, []byte("0"))
	}
	return nil
}

func (o *pass) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	i, err := strconv.Atoi(string(t.Payload))
	if err != nil {
		return err
	}
	time.Sleep(o.sliceCost)
	ctx.Emit(engine.Output{Topic: passOut, Key: []byte(ctx.UserID()), Value: []byte(fmt.Sprint("slice:", i))})
	if i+1 < o.slices {
		return ctx.SetTimer("pass", t.Due, []byte(strconv.Itoa(i+1)))
	}
	return nil
}

// TestLongPassDefersInputInsteadOfOutlivingTheTransaction: the timers due
// before an event take 3s to fire, longer than the 2s transaction
// timeout. Firing them all in the event's transaction would have the
// broker abort it, again and again. The partition instead fires them over
// several transactions, each within the firing window, while the events
// behind them wait in its backlog: every output comes exactly once, in
// event-time order, also when the backlog moves to a new instance with an
// empty state directory (restored from the changelog) half-way. A
// malformed record and one the operator fails on, waiting in the backlog
// among the others, go to the DLQ once each, and the partition goes on.
func TestLongPassDefersInputInsteadOfOutlivingTheTransaction(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprint("restart=", restart), func(t *testing.T) {
			addrs := newBroker(t)
			kafkatest.CreateTopic(t, addrs, passOut, 1, nil)
			op := &pass{slices: 60, sliceCost: 50 * time.Millisecond}
			ts0 := int64(1_700_000_000_000)
			evs := []kafkatest.Event{{UserID: "u", Event: "start", TS: ts0, EventID: "start"}}
			want := []string{"event:start"}
			for i := range op.slices {
				want = append(want, fmt.Sprint("slice:", i))
			}
			for i := range 20 {
				id := fmt.Sprint("e", i)
				ev := kafkatest.Event{UserID: "u", Event: "view_item", TS: ts0 + 10 + int64(i), EventID: id}
				if i == 7 {
					ev.Props = map[string]any{"fail": true} // dead-lettered after a retry
				} else {
					want = append(want, "event:"+id)
				}
				evs = append(evs, ev)
			}
			rs := kafkatest.EventRecords(t, input, evs)
			bad := &kgo.Record{Topic: input, Key: []byte("u"), Value: []byte("{not json")}
			rs = slices.Insert(rs, 5, bad) // in the same partition as u's events
			kafkatest.ProduceRecords(t, addrs, rs)
			cfg := func(c *engine.Config) {
				// The window is at least franz-go's 500ms wait after a
				// transaction that committed no offsets (docs/design.md,
				// "Firing window and backlog"), or that wait would be
				// most of the test.
				c.TransactionTimeout, c.FiringWindow, c.CommitInterval = 2*time.Second, 500*time.Millisecond, 20*time.Millisecond
				c.DisableIdleAdvance = true
			}
			start := func(id string) *instance {
				st, err := state.OpenPebble(t.TempDir(), state.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return startInstanceWith(t, addrs, id, st, []engine.Operator{op}, cfg)
			}
			in := start("one")
			if restart {
				kafkatest.WaitRecords(t, addrs, passOut, len(want)/3)
				in.stop(t)
				in = start("two")
			}
			kafkatest.WaitRecords(t, addrs, passOut, len(want))
			in.stop(t) // so that a duplicate would be there to see
			var got []string
			for _, r := range kafkatest.ReadCommitted(t, addrs, passOut) {
				got = append(got, string(r.Value))
			}
			if !slices.Equal(got, want) {
				t.Fatalf("outputs, in order:\n got %v\nwant %v", got, want)
			}
			var reasons []string
			for _, r := range kafkatest.ReadCommitted(t, addrs, input+".dlq") {
				reasons = append(reasons, headers(r)["cairn.reason"])
			}
			slices.Sort(reasons)
			if want := []string{engine.ReasonNotDecoded, engine.ReasonOperator}; !slices.Equal(reasons, want) {
				t.Errorf("dead letters' reasons %v, want %v", reasons, want)
			}
		})
	}
}

// clockProbe arms a timer one ms after a "arm" event and, when it fires,
// emits the partition clock it sees.
type clockProbe struct{}

func (clockProbe) Name() string     { return "probe" }
func (clockProbe) Events() []string { return nil }

func (clockProbe) OnEvent(ctx *engine.Context, ev *engine.Event) error {
	if ev.Name == "arm" {
		return ctx.SetTimer("t", ev.TS+1, nil)
	}
	return nil
}

func (clockProbe) OnTimer(ctx *engine.Context, t *engine.Timer) error {
	ctx.Emit(engine.Output{Topic: passOut, Key: []byte(ctx.UserID()), Value: []byte(fmt.Sprint(ctx.Clock()))})
	return nil
}

// TestTimersBeforeAnEventSeeTheClockLocalSees: a timer fired before an
// event sees the partition clock already at that event's time, in the
// engine's workers (with their firing window) as in engine.Local.
func TestTimersBeforeAnEventSeeTheClockLocalSees(t *testing.T) {
	ts0 := int64(1_700_000_000_000)
	evs := []kafkatest.Event{{UserID: "u", Event: "arm", TS: ts0, EventID: "a"}, {UserID: "u", Event: "view_item", TS: ts0 + 100, EventID: "b"}}
	l, err := engine.NewLocal(0, clockProbe{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var want []string
	for _, ev := range evs {
		outs, err := l.Process(engine.Event{UserID: ev.UserID, Name: ev.Event, TS: ev.TS, EventID: ev.EventID})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			want = append(want, string(o.Value))
		}
	}

	addrs := newBroker(t)
	kafkatest.CreateTopic(t, addrs, passOut, 1, nil)
	kafkatest.ProduceEvents(t, addrs, input, evs)
	st, err := state.OpenPebble(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	in := startInstanceWith(t, addrs, "one", st, []engine.Operator{clockProbe{}}, func(c *engine.Config) { c.DisableIdleAdvance = true })
	kafkatest.WaitRecords(t, addrs, passOut, len(want))
	in.stop(t)
	var got []string
	for _, r := range kafkatest.ReadCommitted(t, addrs, passOut) {
		got = append(got, string(r.Value))
	}
	if !slices.Equal(got, want) || len(want) != 1 {
		t.Fatalf("clock seen by the timer: engine %v, Local %v (want one firing)", got, want)
	}
}
